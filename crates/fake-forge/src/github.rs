//! The GitHub REST subset and GitHub's webhook payloads.

use crate::diff::{self, Side};
use crate::git::{self, Heads};
use crate::http::{self, Paging, Req, error, json};
use crate::{
    Assignment, BOT_USERNAME, Change, CommitStatus, Forge, IssueComment, PrAction, Repo, RepoState,
    Review, ReviewComment, Shared, User, now,
};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::sync::Arc;

/// GitHub's limit on comment and review bodies.
const BODY_LIMIT: usize = 65_536;
/// GitHub's limit on a commit status description.
const DESCRIPTION_LIMIT: usize = 140;
const STATES: &[&str] = &["error", "failure", "pending", "success"];

/// Hex HMAC-SHA256 of `body` under `secret`.
pub(crate) fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

pub(crate) async fn route(shared: &Arc<Shared>, req: &Req) -> Response {
    let mut r = serve(shared, req).await;
    let h = r.headers_mut();
    http::insert(h, "x-github-api-version-selected", "2022-11-28");
    if !h.contains_key("x-ratelimit-remaining") {
        http::insert(h, "x-ratelimit-limit", "5000");
        http::insert(h, "x-ratelimit-remaining", "4999");
        http::insert(h, "x-ratelimit-used", "1");
        http::insert(h, "x-ratelimit-resource", "core");
    }
    r
}

async fn serve(shared: &Arc<Shared>, req: &Req) -> Response {
    if req.header("user-agent").is_none_or(str::is_empty) {
        return (
            StatusCode::FORBIDDEN,
            "Request forbidden by administrative rules. Please make sure your request has a User-Agent header (https://docs.github.com/en/rest/overview/resources-in-the-rest-api#user-agent-required). Check https://developer.github.com for other possible causes.\n",
        )
            .into_response();
    }
    let accept = req.header("accept").unwrap_or("");
    if !accept.contains("application/vnd.github") && !accept.contains("application/json") {
        return error(
            Forge::GitHub,
            StatusCode::FORBIDDEN,
            "Send Accept: application/vnd.github+json (or application/json)",
        );
    }
    let token = shared.github_token.as_str();
    let auth = req.header("authorization");
    let given = auth.and_then(|v| {
        v.strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("token "))
    });
    match given {
        None => {
            return error(
                Forge::GitHub,
                StatusCode::UNAUTHORIZED,
                "Requires authentication",
            );
        }
        Some(t) if t != token => {
            return error(Forge::GitHub, StatusCode::UNAUTHORIZED, "Bad credentials");
        }
        Some(_) => {}
    }
    let segs = req.segs();
    let method = req.method.as_str();
    match (method, segs.as_slice()) {
        ("GET", ["user", "repos"]) => list_repos(shared, req),
        (_, ["repos", owner, name, rest @ ..]) => {
            let path = format!("{owner}/{name}");
            let Some(repo) = shared.state().repo(Forge::GitHub, &path).cloned() else {
                return not_found();
            };
            repo_route(shared, req, &repo, method, rest).await
        }
        _ => not_found(),
    }
}

fn not_found() -> Response {
    error(Forge::GitHub, StatusCode::NOT_FOUND, "Not Found")
}

fn unprocessable(shared: &Shared, req: &Req, reason: String, body: &Value) -> Response {
    shared.fail_validation(Forge::GitHub, req, reason);
    json(StatusCode::UNPROCESSABLE_ENTITY, body)
}

fn too_long(resource: &str, field: &str, limit: usize) -> Value {
    json!({
        "message": "Validation Failed",
        "errors": [{
            "resource": resource,
            "code": "custom",
            "field": field,
            "message": format!("{field} is too long (maximum is {limit} characters)"),
        }],
        "documentation_url": "https://docs.github.com/rest",
    })
}

async fn repo_route(
    shared: &Arc<Shared>,
    req: &Req,
    repo: &RepoState,
    method: &str,
    rest: &[&str],
) -> Response {
    let change = |n: &str| {
        n.parse::<u64>().ok().and_then(|n| {
            shared
                .state()
                .change(Forge::GitHub, repo.repo.id, n)
                .cloned()
        })
    };
    match (method, rest) {
        ("GET", []) => json(
            StatusCode::OK,
            &repo_json(shared, &users(shared), &repo.repo, &repo.created_at),
        ),
        ("GET", ["hooks"]) => list_hooks(shared, repo),
        ("GET", ["pulls", n]) => match change(n) {
            Some(c) => match pr_json(shared, repo, &c).await {
                Ok(v) => json(StatusCode::OK, &v),
                Err(e) => error(Forge::GitHub, StatusCode::INTERNAL_SERVER_ERROR, &e),
            },
            None => not_found(),
        },
        (_, ["pulls", n, "reviews"]) => match (method, change(n)) {
            (_, None) => not_found(),
            ("GET", Some(c)) => list_reviews(shared, req, repo, &c),
            ("POST", Some(c)) => create_review(shared, req, repo, &c).await,
            _ => not_found(),
        },
        ("PATCH" | "GET", ["issues", "comments", id]) => {
            comment(shared, req, repo, id, method == "PATCH")
        }
        (_, ["issues", n, "comments"]) => match (method, change(n)) {
            (_, None) => not_found(),
            ("GET", Some(c)) => list_comments(shared, req, repo, &c),
            ("POST", Some(c)) => create_comment(shared, req, repo, &c),
            _ => not_found(),
        },
        ("POST", ["statuses", sha]) => create_status(shared, req, repo, sha).await,
        ("POST", ["issues", n, "assignees"]) => match change(n) {
            Some(c) => assign(shared, req, repo, &c, false).await,
            None => not_found(),
        },
        ("POST", ["pulls", n, "requested_reviewers"]) => match change(n) {
            Some(c) => assign(shared, req, repo, &c, true).await,
            None => not_found(),
        },
        _ => not_found(),
    }
}

fn users(shared: &Shared) -> Vec<User> {
    shared.state().users.clone()
}

fn login(users: &[User], id: u64) -> String {
    users
        .iter()
        .find(|u| u.id == id)
        .map_or_else(|| format!("user{id}"), |u| u.username.clone())
}

fn user_json(shared: &Shared, users: &[User], id: u64) -> Value {
    let login = login(users, id);
    json!({
        "login": login,
        "id": id,
        "node_id": format!("U_fake{id}"),
        "avatar_url": "",
        "url": format!("{}/api/v3/users/{login}", shared.forge_url(Forge::GitHub)),
        "html_url": format!("{}/{login}", shared.forge_url(Forge::GitHub)),
        "type": "User",
        "site_admin": false,
    })
}

fn user_by_login(shared: &Shared, users: &[User], login: &str) -> Value {
    let id = users
        .iter()
        .find(|u| u.username == login)
        .map_or(0, |u| u.id);
    user_json(shared, users, id)
}

fn api(shared: &Shared) -> String {
    format!("{}/api/v3", shared.forge_url(Forge::GitHub))
}

fn web(shared: &Shared, repo: &Repo) -> String {
    format!("{}/{}", shared.forge_url(Forge::GitHub), repo.path)
}

fn repo_json(shared: &Shared, users: &[User], repo: &Repo, created_at: &str) -> Value {
    let (owner, name) = repo
        .path
        .split_once('/')
        .unwrap_or(("", repo.path.as_str()));
    let html = web(shared, repo);
    json!({
        "id": repo.id,
        "node_id": format!("R_fake{}", repo.id),
        "name": name,
        "full_name": repo.path,
        "private": true,
        "owner": user_by_login(shared, users, owner),
        "html_url": html,
        "description": null,
        "fork": false,
        "url": format!("{}/repos/{}", api(shared), repo.path),
        "hooks_url": format!("{}/repos/{}/hooks", api(shared), repo.path),
        "clone_url": format!("{html}.git"),
        "git_url": format!("git://127.0.0.1/{}.git", repo.path),
        "ssh_url": format!("git@127.0.0.1:{}.git", repo.path),
        "default_branch": "main",
        "visibility": "private",
        "archived": false,
        "disabled": false,
        "created_at": created_at,
        "updated_at": created_at,
        "pushed_at": created_at,
        "permissions": {"admin": true, "maintain": true, "push": true, "triage": true, "pull": true},
    })
}

fn list_repos(shared: &Shared, req: &Req) -> Response {
    let paging = match Paging::read(req, 30, 100) {
        Ok(p) => p,
        Err(e) => return error(Forge::GitHub, StatusCode::UNPROCESSABLE_ENTITY, &e),
    };
    let mut all: Vec<RepoState> = shared
        .state()
        .repos
        .iter()
        .filter(|r| r.repo.forge == Forge::GitHub)
        .cloned()
        .collect();
    all.sort_by(|a, b| a.repo.path.cmp(&b.repo.path));
    let users = users(shared);
    let items: Vec<Value> = paging
        .slice(&all)
        .iter()
        .map(|r| repo_json(shared, &users, &r.repo, &r.created_at))
        .collect();
    paged(shared, req, paging, all.len(), &Value::Array(items))
}

/// A list answer with GitHub's `Link` header (absent on a single page).
fn paged(shared: &Shared, req: &Req, paging: Paging, total: usize, items: &Value) -> Response {
    let mut r = json(StatusCode::OK, items);
    if paging.total_pages(total) > 1 || paging.page > 1 {
        http::insert(
            r.headers_mut(),
            "link",
            &paging.link(shared, req, total, false),
        );
    }
    r
}

fn list_hooks(shared: &Shared, repo: &RepoState) -> Response {
    let hooks: Vec<Value> = repo
        .hooks
        .iter()
        .map(|h| {
            json!({
                "type": "Repository",
                "id": h.id,
                "name": "web",
                "active": true,
                "events": h.events,
                "config": {"content_type": "json", "insecure_ssl": "0", "url": h.url},
                "updated_at": repo.created_at,
                "created_at": repo.created_at,
                "url": format!("{}/repos/{}/hooks/{}", api(shared), repo.repo.path, h.id),
                "ping_url": format!("{}/repos/{}/hooks/{}/pings", api(shared), repo.repo.path, h.id),
                "last_response": {"code": null, "status": "unused", "message": null},
            })
        })
        .collect();
    json(StatusCode::OK, &Value::Array(hooks))
}

async fn pr_json(shared: &Shared, repo: &RepoState, c: &Change) -> Result<Value, String> {
    let dir = shared.repo_dir(Forge::GitHub, &repo.repo.path);
    let heads = git::heads(&dir, &c.source, &c.target).await?;
    let files = git::diff(&dir, &heads.base, &heads.head).await?;
    Ok(pr_json_with(shared, repo, c, &heads, files.len()))
}

fn pr_json_with(
    shared: &Shared,
    repo: &RepoState,
    c: &Change,
    heads: &Heads,
    changed_files: usize,
) -> Value {
    let users = users(shared);
    let owner = repo.repo.path.split('/').next().unwrap_or("");
    let people =
        |ids: &[u64]| -> Vec<Value> { ids.iter().map(|i| user_json(shared, &users, *i)).collect() };
    let repository = repo_json(shared, &users, &repo.repo, &repo.created_at);
    let side = |branch: &str, sha: &str| {
        json!({
            "label": format!("{owner}:{branch}"),
            "ref": branch,
            "sha": sha,
            "user": user_by_login(shared, &users, owner),
            "repo": repository,
        })
    };
    let url = format!(
        "{}/repos/{}/pulls/{}",
        api(shared),
        repo.repo.path,
        c.number
    );
    let html = format!("{}/pull/{}", web(shared, &repo.repo), c.number);
    let assignees = people(&c.assignees);
    json!({
        "url": url,
        "id": c.id,
        "node_id": format!("PR_fake{}", c.id),
        "html_url": html,
        "diff_url": format!("{html}.diff"),
        "patch_url": format!("{html}.patch"),
        "issue_url": format!("{}/repos/{}/issues/{}", api(shared), repo.repo.path, c.number),
        "number": c.number,
        "state": if c.open { "open" } else { "closed" },
        "locked": false,
        "title": c.title,
        "user": user_json(shared, &users, c.author),
        "body": null,
        "created_at": c.created_at,
        "updated_at": c.updated_at,
        "closed_at": if c.open { Value::Null } else { Value::from(c.updated_at.clone()) },
        "merged_at": null,
        "merge_commit_sha": null,
        "assignee": assignees.first().cloned().unwrap_or(Value::Null),
        "assignees": assignees,
        "requested_reviewers": people(&c.reviewers),
        "requested_teams": [],
        "labels": [],
        "draft": c.draft,
        "head": side(&c.source, &heads.head),
        "base": side(&c.target, &heads.start),
        "author_association": "CONTRIBUTOR",
        "merged": false,
        "mergeable": null,
        "mergeable_state": "unknown",
        "comments": 0,
        "review_comments": 0,
        "changed_files": changed_files,
    })
}

fn review_json(shared: &Shared, users: &[User], r: &Review, at: &str) -> Value {
    let html = format!(
        "{}/{}/pull/{}",
        shared.forge_url(Forge::GitHub),
        r.repo,
        r.number
    );
    json!({
        "id": r.id,
        "node_id": format!("PRR_fake{}", r.id),
        "user": user_by_login(shared, users, BOT_USERNAME),
        "body": r.body,
        "state": r.state,
        "html_url": format!("{html}#pullrequestreview-{}", r.id),
        "pull_request_url": format!("{}/repos/{}/pulls/{}", api(shared), r.repo, r.number),
        "author_association": "COLLABORATOR",
        "submitted_at": if r.state == "PENDING" { Value::Null } else { Value::from(at) },
        "commit_id": r.commit_id,
    })
}

fn list_reviews(shared: &Shared, req: &Req, repo: &RepoState, c: &Change) -> Response {
    let paging = match Paging::read(req, 30, 100) {
        Ok(p) => p,
        Err(e) => return error(Forge::GitHub, StatusCode::UNPROCESSABLE_ENTITY, &e),
    };
    let users = users(shared);
    let all: Vec<(Review, String)> = shared
        .state()
        .reviews
        .iter()
        .filter(|(r, _)| r.repo == repo.repo.path && r.number == c.number)
        .cloned()
        .collect();
    let items: Vec<Value> = paging
        .slice(&all)
        .iter()
        .map(|(r, at)| review_json(shared, &users, r, at))
        .collect();
    paged(shared, req, paging, all.len(), &Value::Array(items))
}

fn line_unresolved() -> Value {
    json!({
        "message": "Unprocessable Entity",
        "errors": ["Line could not be resolved"],
        "documentation_url": "https://docs.github.com/rest/pulls/reviews#create-a-review-for-a-pull-request",
        "status": "422",
    })
}

/// Reads one review comment; the error says what is wrong with it.
fn parse_comment(v: &Value, i: usize) -> Result<ReviewComment, String> {
    let text = |k: &str| v.get(k).and_then(Value::as_str);
    let path = text("path").ok_or(format!("comments[{i}].path is missing"))?;
    let body = text("body").ok_or(format!("comments[{i}].body is missing"))?;
    if v.get("position").is_some_and(|p| !p.is_null()) && v.get("line").is_none() {
        return Err(format!(
            "comments[{i}] uses the legacy diff position; the fake resolves line/side only"
        ));
    }
    let line = v
        .get("line")
        .and_then(Value::as_u64)
        .filter(|l| *l > 0)
        .ok_or(format!(
            "comments[{i}].line is missing or not a line number"
        ))?;
    let side = text("side").unwrap_or("RIGHT");
    Side::parse(side).ok_or(format!("comments[{i}].side {side:?} is not LEFT or RIGHT"))?;
    let start_line = match v.get("start_line") {
        None | Some(Value::Null) => None,
        Some(s) => Some(
            s.as_u64()
                .filter(|l| *l > 0)
                .ok_or(format!("comments[{i}].start_line is not a line number"))?,
        ),
    };
    let start_side = match text("start_side") {
        None => None,
        Some(s) => {
            Side::parse(s).ok_or(format!(
                "comments[{i}].start_side {s:?} is not LEFT or RIGHT"
            ))?;
            Some(s.to_owned())
        }
    };
    if start_side.is_some() && start_line.is_none() {
        return Err(format!("comments[{i}].start_side without start_line"));
    }
    Ok(ReviewComment {
        id: 0,
        path: path.to_owned(),
        line,
        side: side.to_owned(),
        start_line,
        start_side,
        body: body.to_owned(),
    })
}

async fn create_review(shared: &Arc<Shared>, req: &Req, repo: &RepoState, c: &Change) -> Response {
    let body = req.json.clone().unwrap_or(Value::Null);
    if !body.is_object() {
        return unprocessable(
            shared,
            req,
            "the body is not a JSON object".into(),
            &json!({"message": "Problems parsing JSON"}),
        );
    }
    let dir = shared.repo_dir(Forge::GitHub, &repo.repo.path);
    let heads = match git::heads(&dir, &c.source, &c.target).await {
        Ok(h) => h,
        Err(e) => return error(Forge::GitHub, StatusCode::INTERNAL_SERVER_ERROR, &e),
    };
    let commit_id = match body.get("commit_id") {
        None | Some(Value::Null) => heads.head.clone(),
        Some(v) => v.as_str().unwrap_or("").to_owned(),
    };
    if commit_id != heads.head {
        return unprocessable(
            shared,
            req,
            format!("commit_id {commit_id} is not the head {}", heads.head),
            &line_unresolved(),
        );
    }
    let event = body.get("event").and_then(Value::as_str);
    let state = match event {
        None => "PENDING",
        Some("COMMENT") => "COMMENTED",
        Some("REQUEST_CHANGES") => "CHANGES_REQUESTED",
        Some("APPROVE") => "APPROVED",
        Some(other) => {
            return unprocessable(
                shared,
                req,
                format!("event {other:?} is not COMMENT, REQUEST_CHANGES or APPROVE"),
                &json!({
                    "message": "Unprocessable Entity",
                    "errors": [format!("Variable $event of type PullRequestReviewEvent was provided invalid value: {other}")],
                }),
            );
        }
    };
    let text = body
        .get("body")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    if text.chars().count() > BODY_LIMIT {
        return unprocessable(
            shared,
            req,
            "the review body is too long".into(),
            &too_long("PullRequestReview", "body", BODY_LIMIT),
        );
    }
    let raw = match body.get("comments") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.clone(),
        Some(_) => {
            return unprocessable(
                shared,
                req,
                "comments is not an array".into(),
                &json!({"message": "Invalid request.\n\nFor 'properties/comments', is not an array."}),
            );
        }
    };
    if text.trim().is_empty()
        && raw.is_empty()
        && matches!(state, "CHANGES_REQUESTED" | "COMMENTED")
    {
        return unprocessable(
            shared,
            req,
            format!("a {state} review needs a body"),
            &json!({
                "message": "Unprocessable Entity",
                "errors": ["Review body is required for REQUEST_CHANGES and COMMENT events"],
            }),
        );
    }
    let files = match git::diff(&dir, &heads.base, &heads.head).await {
        Ok(f) => f,
        Err(e) => return error(Forge::GitHub, StatusCode::INTERNAL_SERVER_ERROR, &e),
    };
    let mut comments = Vec::new();
    for (i, v) in raw.iter().enumerate() {
        let checked = parse_comment(v, i).and_then(|rc| {
            if rc.body.chars().count() > BODY_LIMIT {
                return Err(format!("comments[{i}].body is too long"));
            }
            let side = Side::parse(&rc.side).unwrap_or(Side::Right);
            let start = rc.start_line.map(|l| {
                let s = rc
                    .start_side
                    .as_deref()
                    .and_then(Side::parse)
                    .unwrap_or(side);
                (l, s)
            });
            diff::check_github(&files, &rc.path, rc.line, side, start)
                .map_err(|e| format!("comments[{i}]: {e}"))?;
            Ok(rc)
        });
        match checked {
            Ok(rc) => comments.push(rc),
            Err(reason) => return unprocessable(shared, req, reason, &line_unresolved()),
        }
    }
    let (review, at) = {
        let mut st = shared.state();
        let id = st.id();
        for rc in &mut comments {
            rc.id = st.id();
        }
        let review = Review {
            id,
            repo: repo.repo.path.clone(),
            number: c.number,
            commit_id,
            state: state.to_owned(),
            body: text,
            comments,
        };
        let at = now();
        st.reviews.push((review.clone(), at.clone()));
        (review, at)
    };
    shared.changed.notify_waiters();
    json(
        StatusCode::OK,
        &review_json(shared, &users(shared), &review, &at),
    )
}

fn comment_json(
    shared: &Shared,
    users: &[User],
    c: &IssueComment,
    created: &str,
    updated: &str,
) -> Value {
    let issue = format!("{}/repos/{}/issues/{}", api(shared), c.repo, c.number);
    json!({
        "id": c.id,
        "node_id": format!("IC_fake{}", c.id),
        "url": format!("{}/repos/{}/issues/comments/{}", api(shared), c.repo, c.id),
        "html_url": format!("{}/{}/pull/{}#issuecomment-{}", shared.forge_url(Forge::GitHub), c.repo, c.number, c.id),
        "body": c.body,
        "user": user_by_login(shared, users, &c.author),
        "created_at": created,
        "updated_at": updated,
        "issue_url": issue,
        "author_association": if c.author == BOT_USERNAME { "NONE" } else { "CONTRIBUTOR" },
    })
}

fn comment_body(shared: &Shared, req: &Req) -> Result<String, Box<Response>> {
    match req
        .json
        .as_ref()
        .and_then(|b| b.get("body"))
        .and_then(Value::as_str)
    {
        None => Err(Box::new(unprocessable(
            shared,
            req,
            "body is missing".into(),
            &json!({"message": "Invalid request.\n\n\"body\" wasn't supplied.", "documentation_url": "https://docs.github.com/rest"}),
        ))),
        Some(b) if b.chars().count() > BODY_LIMIT => Err(Box::new(unprocessable(
            shared,
            req,
            "the comment body is too long".into(),
            &too_long("IssueComment", "body", BODY_LIMIT),
        ))),
        Some(b) => Ok(b.to_owned()),
    }
}

pub(crate) fn add_comment(
    shared: &Shared,
    repo: &Repo,
    number: u64,
    author: &str,
    body: String,
) -> (IssueComment, String) {
    let mut st = shared.state();
    let id = st.id();
    let comment = IssueComment {
        id,
        repo: repo.path.clone(),
        number,
        author: author.to_owned(),
        body,
        previous_bodies: Vec::new(),
    };
    let at = now();
    st.issue_comments
        .push((comment.clone(), at.clone(), at.clone()));
    (comment, at)
}

fn create_comment(shared: &Shared, req: &Req, repo: &RepoState, c: &Change) -> Response {
    let body = match comment_body(shared, req) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let (comment, at) = add_comment(shared, &repo.repo, c.number, BOT_USERNAME, body);
    shared.changed.notify_waiters();
    json(
        StatusCode::CREATED,
        &comment_json(shared, &users(shared), &comment, &at, &at),
    )
}

fn comment(shared: &Shared, req: &Req, repo: &RepoState, id: &str, update: bool) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        return not_found();
    };
    let body = if update {
        match comment_body(shared, req) {
            Ok(b) => Some(b),
            Err(r) => return *r,
        }
    } else {
        None
    };
    let found = {
        let mut st = shared.state();
        let Some((c, created, updated)) = st
            .issue_comments
            .iter_mut()
            .find(|(c, _, _)| c.id == id && c.repo == repo.repo.path)
        else {
            return not_found();
        };
        if let Some(b) = body {
            let old = std::mem::replace(&mut c.body, b);
            c.previous_bodies.push(old);
            *updated = now();
        }
        (c.clone(), created.clone(), updated.clone())
    };
    shared.changed.notify_waiters();
    json(
        StatusCode::OK,
        &comment_json(shared, &users(shared), &found.0, &found.1, &found.2),
    )
}

fn list_comments(shared: &Shared, req: &Req, repo: &RepoState, c: &Change) -> Response {
    let paging = match Paging::read(req, 30, 100) {
        Ok(p) => p,
        Err(e) => return error(Forge::GitHub, StatusCode::UNPROCESSABLE_ENTITY, &e),
    };
    let users = users(shared);
    let all: Vec<(IssueComment, String, String)> = shared
        .state()
        .issue_comments
        .iter()
        .filter(|(x, _, _)| x.repo == repo.repo.path && x.number == c.number)
        .cloned()
        .collect();
    let items: Vec<Value> = paging
        .slice(&all)
        .iter()
        .map(|(x, created, updated)| comment_json(shared, &users, x, created, updated))
        .collect();
    paged(shared, req, paging, all.len(), &Value::Array(items))
}

async fn create_status(shared: &Arc<Shared>, req: &Req, repo: &RepoState, sha: &str) -> Response {
    let body = req.json.clone().unwrap_or(Value::Null);
    let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
    let state = text("state").unwrap_or_default();
    if !STATES.contains(&state.as_str()) {
        return unprocessable(
            shared,
            req,
            format!("state {state:?} is not one of {STATES:?}"),
            &json!({
                "message": "Validation Failed",
                "errors": [{"resource": "Status", "code": "custom", "field": "state", "message": "state is not included in the list"}],
                "documentation_url": "https://docs.github.com/rest/commits/statuses#create-a-commit-status",
            }),
        );
    }
    let dir = shared.repo_dir(Forge::GitHub, &repo.repo.path);
    let is_hex = sha.len() >= 7 && sha.len() <= 40 && sha.bytes().all(|b| b.is_ascii_hexdigit());
    let resolved = if is_hex {
        git::rev_parse_async(&dir, sha).await
    } else {
        None
    };
    let Some(resolved) = resolved else {
        return unprocessable(
            shared,
            req,
            format!("no commit {sha}"),
            &json!({"message": format!("No commit found for SHA: {sha}"), "documentation_url": "https://docs.github.com/rest/commits/statuses#create-a-commit-status"}),
        );
    };
    let description = text("description");
    if description
        .as_ref()
        .is_some_and(|d| d.chars().count() > DESCRIPTION_LIMIT)
    {
        return unprocessable(
            shared,
            req,
            "the status description is too long".into(),
            &too_long("Status", "description", DESCRIPTION_LIMIT),
        );
    }
    let (status, at) = {
        let mut st = shared.state();
        let id = st.id();
        let status = CommitStatus {
            id,
            repo: repo.repo.path.clone(),
            sha: resolved,
            state,
            target_url: text("target_url"),
            description,
            context: text("context").unwrap_or_else(|| "default".into()),
        };
        let at = now();
        st.statuses.push((status.clone(), at.clone()));
        (status, at)
    };
    shared.changed.notify_waiters();
    let users = users(shared);
    json(
        StatusCode::CREATED,
        &json!({
            "url": format!("{}/repos/{}/statuses/{}", api(shared), status.repo, status.sha),
            "avatar_url": null,
            "id": status.id,
            "node_id": format!("SC_fake{}", status.id),
            "state": status.state,
            "description": status.description,
            "target_url": status.target_url,
            "context": status.context,
            "created_at": at,
            "updated_at": at,
            "creator": user_by_login(shared, &users, BOT_USERNAME),
        }),
    )
}

/// The logins under `key` of the request body (`[]` if absent).
fn logins(body: &Value, key: &str) -> Result<Vec<String>, String> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("For 'items', {i} is not a string."))
            })
            .collect(),
        Some(other) => Err(format!("For 'properties/{key}', {other} is not an array.")),
    }
}

/// `POST /issues/:n/assignees` (`reviewers == false`, answers the issue) or
/// `POST /pulls/:n/requested_reviewers` (answers the pull request): adds
/// the known logins, ignoring unknown ones as GitHub does.
async fn assign(
    shared: &Arc<Shared>,
    req: &Req,
    repo: &RepoState,
    c: &Change,
    reviewers: bool,
) -> Response {
    let body = req.json.clone().unwrap_or(Value::Null);
    let key = if reviewers { "reviewers" } else { "assignees" };
    let sent = match logins(&body, key) {
        Ok(l) => l,
        Err(e) => {
            return unprocessable(
                shared,
                req,
                format!("{key} is invalid: {e}"),
                &json!({
                    "message": format!("Invalid request.\n\n{e}"),
                    "documentation_url": "https://docs.github.com/rest",
                    "status": "422",
                }),
            );
        }
    };
    let all = users(shared);
    let author = login(&all, c.author);
    if reviewers && sent.contains(&author) {
        return unprocessable(
            shared,
            req,
            format!("{author} is the pull request's author and cannot review it"),
            &json!({
                "message": "Review cannot be requested from pull request author.",
                "documentation_url": "https://docs.github.com/rest/pulls/review-requests#request-reviewers-for-a-pull-request",
                "status": "422",
            }),
        );
    }
    let updated = {
        let mut st = shared.state();
        let ids: Vec<u64> = sent
            .iter()
            .filter_map(|l| st.users.iter().find(|u| &u.username == l).map(|u| u.id))
            .collect();
        st.assignments.push(Assignment {
            repo: repo.repo.path.clone(),
            number: c.number,
            assignees: if reviewers { Vec::new() } else { sent.clone() },
            reviewers: if reviewers { sent } else { Vec::new() },
        });
        let stamp = now();
        let Some(change) = st.change_mut(Forge::GitHub, repo.repo.id, c.number) else {
            return not_found();
        };
        let list = if reviewers {
            &mut change.reviewers
        } else {
            &mut change.assignees
        };
        for id in ids {
            if !list.contains(&id) {
                list.push(id);
            }
        }
        change.updated_at = stamp;
        change.clone()
    };
    shared.changed.notify_waiters();
    let dir = shared.repo_dir(Forge::GitHub, &repo.repo.path);
    let (heads, files) = match git::heads(&dir, &updated.source, &updated.target).await {
        Ok(h) => match git::diff(&dir, &h.base, &h.head).await {
            Ok(f) => (h, f.len()),
            Err(e) => return error(Forge::GitHub, StatusCode::INTERNAL_SERVER_ERROR, &e),
        },
        Err(e) => return error(Forge::GitHub, StatusCode::INTERNAL_SERVER_ERROR, &e),
    };
    let pr = pr_json_with(shared, repo, &updated, &heads, files);
    if reviewers {
        return json(StatusCode::CREATED, &pr);
    }
    json(
        StatusCode::CREATED,
        &issue_json(shared, repo, &updated, &pr),
    )
}

/// The issue side of pull request `c` (`pr` is its pull request JSON).
fn issue_json(shared: &Shared, repo: &RepoState, c: &Change, pr: &Value) -> Value {
    let users = users(shared);
    json!({
        "url": format!("{}/repos/{}/issues/{}", api(shared), repo.repo.path, c.number),
        "repository_url": format!("{}/repos/{}", api(shared), repo.repo.path),
        "html_url": pr["html_url"],
        "id": c.id + 1_000_000,
        "node_id": format!("I_fake{}", c.id),
        "number": c.number,
        "title": c.title,
        "user": user_json(shared, &users, c.author),
        "labels": [],
        "state": if c.open { "open" } else { "closed" },
        "locked": false,
        "assignee": pr["assignee"],
        "assignees": pr["assignees"],
        "comments": 0,
        "created_at": c.created_at,
        "updated_at": c.updated_at,
        "closed_at": null,
        "author_association": "CONTRIBUTOR",
        "draft": c.draft,
        "pull_request": {
            "url": pr["url"],
            "html_url": pr["html_url"],
            "diff_url": pr["diff_url"],
            "patch_url": pr["patch_url"],
            "merged_at": null,
        },
        "body": null,
    })
}

/// Snapshot of what a webhook needs.
async fn context(
    shared: &Shared,
    repo: &Repo,
    number: u64,
) -> Result<(RepoState, Change, Heads, usize), String> {
    let (r, c) = {
        let st = shared.state();
        let r = st
            .repo(Forge::GitHub, &repo.path)
            .cloned()
            .ok_or("no such repository")?;
        let c = st
            .change(Forge::GitHub, repo.id, number)
            .cloned()
            .ok_or("no such pull request")?;
        (r, c)
    };
    let dir = shared.repo_dir(Forge::GitHub, &repo.path);
    let heads = git::heads(&dir, &c.source, &c.target).await?;
    let files = git::diff(&dir, &heads.base, &heads.head).await?;
    Ok((r, c, heads, files.len()))
}

/// The `pull_request` payload, after applying the action's effect.
pub(crate) async fn pull_request_event(
    shared: &Shared,
    repo: &Repo,
    number: u64,
    action: PrAction,
) -> Result<Value, String> {
    if let Some(c) = shared.state().change_mut(Forge::GitHub, repo.id, number) {
        match action {
            PrAction::Closed => c.open = false,
            PrAction::Reopened => c.open = true,
            PrAction::ReadyForReview => c.draft = false,
            PrAction::Opened | PrAction::Synchronize | PrAction::Edited => {}
        }
        c.updated_at = now();
    }
    let (r, c, heads, changed) = context(shared, repo, number).await?;
    let users = users(shared);
    let name = match action {
        PrAction::Opened => "opened",
        PrAction::Reopened => "reopened",
        PrAction::Synchronize => "synchronize",
        PrAction::ReadyForReview => "ready_for_review",
        PrAction::Edited => "edited",
        PrAction::Closed => "closed",
    };
    let mut payload = json!({
        "action": name,
        "number": c.number,
        "pull_request": pr_json_with(shared, &r, &c, &heads, changed),
        "repository": repo_json(shared, &users, &r.repo, &r.created_at),
        "sender": user_json(shared, &users, c.author),
    });
    match action {
        PrAction::Synchronize => {
            payload["before"] = Value::from(
                c.announced_head
                    .clone()
                    .unwrap_or_else(|| heads.base.clone()),
            );
            payload["after"] = Value::from(heads.head.clone());
        }
        PrAction::Edited => {
            payload["changes"] = json!({"title": {"from": c.title}});
        }
        _ => {}
    }
    if let Some(ch) = shared.state().change_mut(Forge::GitHub, repo.id, number) {
        ch.announced_head = Some(heads.head);
    }
    Ok(payload)
}

/// The `issue_comment` (`created`) payload for a new comment by the pull
/// request's author (added to the pull request).
pub(crate) async fn issue_comment_event(
    shared: &Shared,
    repo: &Repo,
    number: u64,
    body: &str,
) -> Result<Value, String> {
    let (r, c, heads, changed) = context(shared, repo, number).await?;
    let users = users(shared);
    let author = login(&users, c.author);
    let (comment, at) = add_comment(shared, repo, number, &author, body.to_owned());
    let pr = pr_json_with(shared, &r, &c, &heads, changed);
    let issue_url = format!("{}/repos/{}/issues/{}", api(shared), repo.path, number);
    Ok(json!({
        "action": "created",
        "issue": {
            "url": issue_url,
            "repository_url": format!("{}/repos/{}", api(shared), repo.path),
            "html_url": pr["html_url"],
            "id": c.id + 1_000_000,
            "node_id": format!("I_fake{}", c.id),
            "number": number,
            "title": c.title,
            "user": user_json(shared, &users, c.author),
            "labels": [],
            "state": if c.open { "open" } else { "closed" },
            "locked": false,
            "assignee": null,
            "assignees": [],
            "comments": 1,
            "created_at": c.created_at,
            "updated_at": at,
            "closed_at": null,
            "author_association": "CONTRIBUTOR",
            "draft": c.draft,
            "pull_request": {
                "url": pr["url"],
                "html_url": pr["html_url"],
                "diff_url": pr["diff_url"],
                "patch_url": pr["patch_url"],
                "merged_at": null,
            },
            "body": null,
        },
        "comment": comment_json(shared, &users, &comment, &at, &at),
        "repository": repo_json(shared, &users, &r.repo, &r.created_at),
        "sender": user_json(shared, &users, c.author),
    }))
}
