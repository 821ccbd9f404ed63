//! The GitLab v4 subset and GitLab's webhook payloads.

use crate::diff::{self, GitLabPosition};
use crate::git::{self, Heads};
use crate::http::{self, Paging, Req, error, json};
use crate::{
    BOT_USERNAME, Change, CommitStatus, Discussion, Forge, MrAction, MrUpdate, Note, Repo,
    RepoState, Shared, User, now,
};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};
use std::sync::Arc;

const LINE_CODE: &str =
    "400 Bad request - Note {:line_code=>[\"can't be blank\", \"must be a valid line code\"]}";
const NOTE_LIMIT: usize = 1_000_000;
/// GitLab's limit on a commit status description.
const DESCRIPTION_LIMIT: usize = 255;
/// The states `POST /projects/:id/statuses/:sha` accepts.
const STATES: &[&str] = &["pending", "running", "success", "failed", "canceled"];

pub(crate) async fn route(shared: &Arc<Shared>, req: &Req) -> Response {
    let token = shared.gitlab_token.as_str();
    let ok = req.header("private-token") == Some(token)
        || req
            .header("authorization")
            .and_then(|v| v.strip_prefix("Bearer "))
            == Some(token);
    if !ok {
        return error(Forge::GitLab, StatusCode::UNAUTHORIZED, "401 Unauthorized");
    }
    let method = req.method.as_str();
    let segs = req.segs();
    let Some(("projects", rest)) = segs.split_first().map(|(h, t)| (*h, t)) else {
        return not_found_route();
    };
    if rest.is_empty() {
        return match method {
            "GET" => list_projects(shared, req),
            _ => not_allowed(),
        };
    }
    let Some(project) = find_project(shared, rest[0]) else {
        return error(
            Forge::GitLab,
            StatusCode::NOT_FOUND,
            "404 Project Not Found",
        );
    };
    match (method, &rest[1..]) {
        ("GET", []) => json(StatusCode::OK, &project_json(shared, &project)),
        ("GET", ["hooks"]) => list_hooks(&project),
        ("POST", ["statuses", sha]) => create_status(shared, req, &project, sha).await,
        (_, ["statuses", _]) => not_allowed(),
        (_, ["merge_requests", iid, tail @ ..]) => {
            let Some(change) = iid.parse::<u64>().ok().and_then(|n| {
                shared
                    .state()
                    .change(Forge::GitLab, project.repo.id, n)
                    .cloned()
            }) else {
                return error(Forge::GitLab, StatusCode::NOT_FOUND, "404 Not found");
            };
            merge_request(shared, req, &project, &change, method, tail).await
        }
        (_, [] | ["hooks"]) => not_allowed(),
        _ => not_found_route(),
    }
}

async fn merge_request(
    shared: &Arc<Shared>,
    req: &Req,
    project: &RepoState,
    change: &Change,
    method: &str,
    tail: &[&str],
) -> Response {
    match (method, tail) {
        ("GET", []) => match mr_json(shared, project, change).await {
            Ok(v) => json(StatusCode::OK, &v),
            Err(e) => error(Forge::GitLab, StatusCode::INTERNAL_SERVER_ERROR, &e),
        },
        ("PUT", []) => update_mr(shared, req, project, change).await,
        ("GET", ["notes"]) => list_notes(shared, req, project, change),
        ("POST", ["notes"]) => create_note(shared, req, project, change),
        ("GET" | "PUT", ["notes", id]) => {
            let Some(id) = id.parse::<u64>().ok() else {
                return error(Forge::GitLab, StatusCode::NOT_FOUND, "404 Note Not Found");
            };
            note(shared, req, project, change, id, method == "PUT")
        }
        ("GET", ["discussions"]) => list_discussions(shared, req, project, change),
        ("POST", ["discussions"]) => create_discussion(shared, req, project, change).await,
        (_, [] | ["notes"] | ["notes", _] | ["discussions"]) => not_allowed(),
        _ => not_found_route(),
    }
}

fn not_found_route() -> Response {
    json(StatusCode::NOT_FOUND, &json!({"error": "404 Not Found"}))
}

fn not_allowed() -> Response {
    json(
        StatusCode::METHOD_NOT_ALLOWED,
        &json!({"error": "405 Not Allowed"}),
    )
}

fn bad_param(message: &str) -> Response {
    json(StatusCode::BAD_REQUEST, &json!({"error": message}))
}

fn find_project(shared: &Shared, id: &str) -> Option<RepoState> {
    let state = shared.state();
    match id.parse::<u64>() {
        Ok(n) => state
            .repos
            .iter()
            .find(|r| r.repo.forge == Forge::GitLab && r.repo.id == n)
            .cloned(),
        Err(_) => state.repo(Forge::GitLab, id).cloned(),
    }
}

fn web_url(shared: &Shared, repo: &Repo) -> String {
    format!("{}/{}", shared.forge_url(Forge::GitLab), repo.path)
}

fn ssh_url(repo: &Repo) -> String {
    format!("git@127.0.0.1:{}.git", repo.path)
}

fn namespace(repo: &Repo) -> (&str, &str) {
    repo.path
        .rsplit_once('/')
        .unwrap_or(("", repo.path.as_str()))
}

fn project_json(shared: &Shared, r: &RepoState) -> Value {
    let web = web_url(shared, &r.repo);
    let (ns, name) = namespace(&r.repo);
    let ns_name = ns.rsplit('/').next().unwrap_or(ns);
    json!({
        "id": r.repo.id,
        "description": null,
        "name": name,
        "name_with_namespace": format!("{} / {name}", ns.replace('/', " / ")),
        "path": name,
        "path_with_namespace": r.repo.path,
        "created_at": r.created_at,
        "default_branch": "main",
        "tag_list": [],
        "topics": [],
        "ssh_url_to_repo": ssh_url(&r.repo),
        "http_url_to_repo": format!("{web}.git"),
        "web_url": web,
        "readme_url": null,
        "avatar_url": null,
        "forks_count": 0,
        "star_count": 0,
        "last_activity_at": r.created_at,
        "namespace": {
            "id": 1000 + r.repo.id,
            "name": ns_name,
            "path": ns_name,
            "kind": "group",
            "full_path": ns,
            "parent_id": null,
            "avatar_url": null,
            "web_url": format!("{}/groups/{ns}", shared.forge_url(Forge::GitLab)),
        },
        "visibility": "private",
        "archived": false,
        "empty_repo": false,
        "merge_requests_enabled": true,
        "permissions": {
            "project_access": {"access_level": 40, "notification_level": 3},
            "group_access": null,
        },
    })
}

fn list_projects(shared: &Shared, req: &Req) -> Response {
    let paging = match Paging::read(req, 20, 100) {
        Ok(p) => p,
        Err(e) => return bad_param(&e),
    };
    let mut all: Vec<RepoState> = shared
        .state()
        .repos
        .iter()
        .filter(|r| r.repo.forge == Forge::GitLab)
        .cloned()
        .collect();
    if req.query("sort") != Some("asc") {
        all.reverse();
    }
    let items: Vec<Value> = paging
        .slice(&all)
        .iter()
        .map(|r| project_json(shared, r))
        .collect();
    paged(shared, req, paging, all.len(), &Value::Array(items))
}

/// A list answer with GitLab's pagination headers.
fn paged(shared: &Shared, req: &Req, paging: Paging, total: usize, items: &Value) -> Response {
    let mut r = json(StatusCode::OK, items);
    let pages = paging.total_pages(total);
    let h = r.headers_mut();
    http::insert(h, "x-page", &paging.page.to_string());
    http::insert(h, "x-per-page", &paging.per_page.to_string());
    http::insert(h, "x-total", &total.to_string());
    http::insert(h, "x-total-pages", &pages.to_string());
    let next = if paging.page < pages {
        (paging.page + 1).to_string()
    } else {
        String::new()
    };
    http::insert(h, "x-next-page", &next);
    let prev = if paging.page > 1 {
        (paging.page - 1).to_string()
    } else {
        String::new()
    };
    http::insert(h, "x-prev-page", &prev);
    http::insert(h, "link", &paging.link(shared, req, total, true));
    r
}

fn list_hooks(project: &RepoState) -> Response {
    let has = |h: &crate::Hook, e: &str| h.events.iter().any(|x| x == e);
    let hooks: Vec<Value> = project
        .hooks
        .iter()
        .map(|h| {
            json!({
                "id": h.id,
                "url": h.url,
                "name": null,
                "project_id": project.repo.id,
                "push_events": has(h, "push_events"),
                "push_events_branch_filter": "",
                "issues_events": has(h, "issues_events"),
                "confidential_issues_events": false,
                "merge_requests_events": has(h, "merge_requests_events"),
                "tag_push_events": has(h, "tag_push_events"),
                "note_events": has(h, "note_events"),
                "confidential_note_events": false,
                "job_events": false,
                "pipeline_events": false,
                "wiki_page_events": false,
                "releases_events": false,
                "enable_ssl_verification": false,
                "alert_status": "executable",
                "disabled_until": null,
                "created_at": project.created_at,
            })
        })
        .collect();
    json(StatusCode::OK, &Value::Array(hooks))
}

fn users(shared: &Shared) -> Vec<User> {
    shared.state().users.clone()
}

fn user_json(shared: &Shared, users: &[User], id: u64) -> Value {
    let username = users
        .iter()
        .find(|u| u.id == id)
        .map_or_else(|| format!("user{id}"), |u| u.username.clone());
    json!({
        "id": id,
        "username": username,
        "name": username,
        "state": "active",
        "locked": false,
        "avatar_url": null,
        "web_url": format!("{}/{username}", shared.forge_url(Forge::GitLab)),
    })
}

async fn mr_json(shared: &Shared, project: &RepoState, c: &Change) -> Result<Value, String> {
    let dir = shared.repo_dir(Forge::GitLab, &project.repo.path);
    let heads = git::heads(&dir, &c.source, &c.target).await?;
    let users = users(shared);
    let people =
        |ids: &[u64]| -> Vec<Value> { ids.iter().map(|i| user_json(shared, &users, *i)).collect() };
    let assignees = people(&c.assignees);
    Ok(json!({
        "id": c.id,
        "iid": c.number,
        "project_id": project.repo.id,
        "title": c.title,
        "description": "",
        "state": if c.open { "opened" } else { "closed" },
        "created_at": c.created_at,
        "updated_at": c.updated_at,
        "merged_by": null,
        "merged_at": null,
        "closed_at": null,
        "target_branch": c.target,
        "source_branch": c.source,
        "user_notes_count": 0,
        "upvotes": 0,
        "downvotes": 0,
        "author": user_json(shared, &users, c.author),
        "assignee": assignees.first().cloned().unwrap_or(Value::Null),
        "assignees": assignees,
        "reviewers": people(&c.reviewers),
        "source_project_id": project.repo.id,
        "target_project_id": project.repo.id,
        "labels": [],
        "draft": c.draft,
        "work_in_progress": c.draft,
        "merge_when_pipeline_succeeds": false,
        "merge_status": "can_be_merged",
        "detailed_merge_status": if c.draft { "draft_status" } else { "mergeable" },
        "sha": heads.head,
        "merge_commit_sha": null,
        "squash_commit_sha": null,
        "reference": format!("!{}", c.number),
        "references": {
            "short": format!("!{}", c.number),
            "relative": format!("!{}", c.number),
            "full": format!("{}!{}", project.repo.path, c.number),
        },
        "web_url": format!("{}/-/merge_requests/{}", web_url(shared, &project.repo), c.number),
        "squash": false,
        "diff_refs": {
            "base_sha": heads.base,
            "head_sha": heads.head,
            "start_sha": heads.start,
        },
        "has_conflicts": false,
        "blocking_discussions_resolved": true,
    }))
}

fn ids(v: Option<&Value>, name: &str) -> Result<Option<Vec<u64>>, String> {
    match v {
        None => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| i.as_u64().ok_or_else(|| format!("{name} is invalid")))
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(format!("{name} is invalid")),
    }
}

async fn update_mr(shared: &Arc<Shared>, req: &Req, project: &RepoState, c: &Change) -> Response {
    let Some(body) = req.json.as_ref().filter(|b| b.is_object()) else {
        return bad_param("at least one parameter must be provided");
    };
    let assignees = match (
        ids(body.get("assignee_ids"), "assignee_ids"),
        body.get("assignee_id"),
    ) {
        (Err(e), _) => return bad_param(&e),
        (Ok(Some(list)), _) => Some(list),
        (Ok(None), Some(one)) => match one.as_u64() {
            Some(id) => Some(vec![id]),
            None if one.is_null() => Some(Vec::new()),
            None => return bad_param("assignee_id is invalid"),
        },
        (Ok(None), None) => None,
    };
    let reviewers = match ids(body.get("reviewer_ids"), "reviewer_ids") {
        Ok(r) => r,
        Err(e) => return bad_param(&e),
    };
    let updated = {
        let mut state = shared.state();
        state.mr_updates.push(MrUpdate {
            project: project.repo.path.clone(),
            iid: c.number,
            assignee_ids: assignees.clone(),
            reviewer_ids: reviewers.clone(),
        });
        // GitLab drops ids of users that do not exist (and 0, "nobody").
        let known: Vec<u64> = state.users.iter().map(|u| u.id).collect();
        let keep = |list: Vec<u64>| -> Vec<u64> {
            let mut out: Vec<u64> = Vec::new();
            for id in list {
                if known.contains(&id) && !out.contains(&id) {
                    out.push(id);
                }
            }
            out
        };
        let stamp = now();
        let Some(change) = state.change_mut(Forge::GitLab, project.repo.id, c.number) else {
            return error(Forge::GitLab, StatusCode::NOT_FOUND, "404 Not found");
        };
        if let Some(a) = assignees {
            change.assignees = keep(a);
        }
        if let Some(r) = reviewers {
            change.reviewers = keep(r);
        }
        change.updated_at = stamp;
        change.clone()
    };
    shared.changed.notify_waiters();
    match mr_json(shared, project, &updated).await {
        Ok(v) => json(StatusCode::OK, &v),
        Err(e) => error(Forge::GitLab, StatusCode::INTERNAL_SERVER_ERROR, &e),
    }
}

/// `POST /projects/:id/statuses/:sha`: validated as GitLab does (a known
/// `state`, an existing commit, a `description` of at most 255
/// characters), recorded in [`crate::FakeForge::statuses`] with `name` as
/// the context.
async fn create_status(
    shared: &Arc<Shared>,
    req: &Req,
    project: &RepoState,
    sha: &str,
) -> Response {
    let body = req.json.clone().unwrap_or(Value::Null);
    let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
    let Some(state) = text("state") else {
        shared.fail_validation(Forge::GitLab, req, "state is missing".into());
        return bad_param("state is missing");
    };
    if !STATES.contains(&state.as_str()) {
        shared.fail_validation(
            Forge::GitLab,
            req,
            format!("state {state:?} is not one of {STATES:?}"),
        );
        return bad_param("state does not have a valid value");
    }
    let dir = shared.repo_dir(Forge::GitLab, &project.repo.path);
    let resolved = if sha.is_empty() || sha.starts_with('-') {
        None
    } else {
        git::rev_parse_async(&dir, sha).await
    };
    let Some(resolved) = resolved else {
        shared.fail_validation(Forge::GitLab, req, format!("no commit {sha}"));
        return error(Forge::GitLab, StatusCode::NOT_FOUND, "404 Commit Not Found");
    };
    let description = text("description");
    if description
        .as_ref()
        .is_some_and(|d| d.chars().count() > DESCRIPTION_LIMIT)
    {
        shared.fail_validation(
            Forge::GitLab,
            req,
            "the status description is too long".into(),
        );
        return json(
            StatusCode::BAD_REQUEST,
            &json!({"message": {"description": [
                format!("is too long (maximum is {DESCRIPTION_LIMIT} characters)")
            ]}}),
        );
    }
    let name = text("name")
        .or_else(|| text("context"))
        .unwrap_or_else(|| "default".into());
    let (status, at) = {
        let mut st = shared.state();
        // A pending or running status is updated in place; moving it to
        // the state it already has is not a transition GitLab allows.
        let current = st
            .statuses
            .iter()
            .rev()
            .find(|(s, _)| s.repo == project.repo.path && s.sha == resolved && s.context == name)
            .map(|(s, _)| s.state.clone());
        let refused = match (current.as_deref(), state.as_str()) {
            (Some("pending"), "pending") => Some(":enqueue from :pending"),
            (Some("running"), "running") => Some(":run from :running"),
            _ => None,
        };
        if let Some(how) = refused {
            drop(st);
            return error(
                Forge::GitLab,
                StatusCode::BAD_REQUEST,
                &format!("Cannot transition status via {how}"),
            );
        }
        let id = st.id();
        let status = CommitStatus {
            id,
            repo: project.repo.path.clone(),
            sha: resolved,
            state,
            target_url: text("target_url"),
            description,
            context: name,
        };
        let at = now();
        st.statuses.push((status.clone(), at.clone()));
        (status, at)
    };
    shared.changed.notify_waiters();
    let users = users(shared);
    let bot = users
        .iter()
        .find(|u| u.username == BOT_USERNAME)
        .map_or(0, |u| u.id);
    let finished = matches!(status.state.as_str(), "success" | "failed" | "canceled");
    let started = status.state != "pending";
    json(
        StatusCode::CREATED,
        &json!({
            "id": status.id,
            "sha": status.sha,
            "ref": text("ref"),
            "status": status.state,
            "name": status.context,
            "target_url": status.target_url,
            "description": status.description,
            "created_at": at,
            "started_at": if started { Value::from(at.clone()) } else { Value::Null },
            "finished_at": if finished { Value::from(at.clone()) } else { Value::Null },
            "allow_failure": false,
            "coverage": null,
            "pipeline_id": status.id + 1_000_000,
            "author": user_json(shared, &users, bot),
        }),
    )
}

fn note_json(
    shared: &Shared,
    users: &[User],
    n: &Note,
    created_at: &str,
    c: &Change,
    project_id: u64,
) -> Value {
    let author = users
        .iter()
        .find(|u| u.username == n.author)
        .map_or(0, |u| u.id);
    let mut v = json!({
        "id": n.id,
        "type": if n.position.is_some() { Value::from("DiffNote") } else { Value::Null },
        "body": n.body,
        "attachment": null,
        "author": user_json(shared, users, author),
        "created_at": created_at,
        "updated_at": created_at,
        "system": false,
        "noteable_id": c.id,
        "noteable_type": "MergeRequest",
        "project_id": project_id,
        "resolvable": n.position.is_some(),
        "resolved": false,
        "confidential": false,
        "internal": false,
        "noteable_iid": c.number,
        "commands_changes": {},
    });
    if let Some(p) = &n.position {
        v["position"] = p.clone();
    }
    v
}

fn list_notes(shared: &Shared, req: &Req, project: &RepoState, c: &Change) -> Response {
    let paging = match Paging::read(req, 20, 100) {
        Ok(p) => p,
        Err(e) => return bad_param(&e),
    };
    let users = users(shared);
    let mut notes: Vec<(Note, String)> = shared
        .state()
        .notes
        .iter()
        .filter(|(n, _)| n.project == project.repo.path && n.mr_iid == c.number)
        .cloned()
        .collect();
    if req.query("sort") != Some("asc") {
        notes.reverse();
    }
    let items: Vec<Value> = paging
        .slice(&notes)
        .iter()
        .map(|(n, at)| note_json(shared, &users, n, at, c, project.repo.id))
        .collect();
    paged(shared, req, paging, notes.len(), &Value::Array(items))
}

/// The note text of a create or update, with GitLab's refusals.
fn note_body(req: &Req) -> Result<String, Box<Response>> {
    match req.json.as_ref().and_then(|b| b.get("body")) {
        None | Some(Value::Null) => Err(Box::new(bad_param("body is missing"))),
        Some(Value::String(s)) if s.trim().is_empty() => Err(Box::new(json(
            StatusCode::BAD_REQUEST,
            &json!({"message": {"note": ["can't be blank"]}}),
        ))),
        Some(Value::String(s)) if s.chars().count() > NOTE_LIMIT => Err(Box::new(json(
            StatusCode::BAD_REQUEST,
            &json!({"message": {"note": ["is too long (maximum is 1000000 characters)"]}}),
        ))),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(Box::new(bad_param("body is invalid"))),
    }
}

fn add_note(
    shared: &Shared,
    project: &RepoState,
    c: &Change,
    author: &str,
    body: String,
    thread: bool,
    position: Option<Value>,
) -> (Note, String) {
    let mut state = shared.state();
    let id = state.id();
    let note = Note {
        id,
        project: project.repo.path.clone(),
        mr_iid: c.number,
        author: author.to_owned(),
        body,
        previous_bodies: Vec::new(),
        discussion_id: thread.then(|| discussion_id(id)),
        position,
    };
    let at = now();
    state.notes.push((note.clone(), at.clone()));
    (note, at)
}

fn create_note(shared: &Shared, req: &Req, project: &RepoState, c: &Change) -> Response {
    let body = match note_body(req) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let (note, at) = add_note(shared, project, c, BOT_USERNAME, body, false, None);
    shared.changed.notify_waiters();
    json(
        StatusCode::CREATED,
        &note_json(shared, &users(shared), &note, &at, c, project.repo.id),
    )
}

fn note(
    shared: &Shared,
    req: &Req,
    project: &RepoState,
    c: &Change,
    id: u64,
    update: bool,
) -> Response {
    let body = if update {
        match note_body(req) {
            Ok(b) => Some(b),
            Err(r) => return *r,
        }
    } else {
        None
    };
    let found =
        {
            let mut state = shared.state();
            let Some((n, at)) = state.notes.iter_mut().find(|(n, _)| {
                n.id == id && n.project == project.repo.path && n.mr_iid == c.number
            }) else {
                return error(Forge::GitLab, StatusCode::NOT_FOUND, "404 Note Not Found");
            };
            if let Some(body) = body {
                if n.author != BOT_USERNAME {
                    return error(Forge::GitLab, StatusCode::FORBIDDEN, "403 Forbidden");
                }
                let old = std::mem::replace(&mut n.body, body);
                n.previous_bodies.push(old);
            }
            (n.clone(), at.clone())
        };
    shared.changed.notify_waiters();
    json(
        StatusCode::OK,
        &note_json(
            shared,
            &users(shared),
            &found.0,
            &found.1,
            c,
            project.repo.id,
        ),
    )
}

fn discussion_json(
    shared: &Shared,
    users: &[User],
    n: &Note,
    at: &str,
    c: &Change,
    project_id: u64,
) -> Value {
    json!({
        "id": n.discussion_id,
        "individual_note": n.position.is_none(),
        "notes": [note_json(shared, users, n, at, c, project_id)],
    })
}

fn list_discussions(shared: &Shared, req: &Req, project: &RepoState, c: &Change) -> Response {
    let paging = match Paging::read(req, 20, 100) {
        Ok(p) => p,
        Err(e) => return bad_param(&e),
    };
    let users = users(shared);
    let notes: Vec<(Note, String)> = shared
        .state()
        .notes
        .iter()
        .filter(|(n, _)| n.project == project.repo.path && n.mr_iid == c.number)
        .cloned()
        .collect();
    let items: Vec<Value> = paging
        .slice(&notes)
        .iter()
        .map(|(n, at)| {
            let mut n = n.clone();
            if n.discussion_id.is_none() {
                n.discussion_id = Some(discussion_id(n.id));
            }
            discussion_json(shared, &users, &n, at, c, project.repo.id)
        })
        .collect();
    paged(shared, req, paging, notes.len(), &Value::Array(items))
}

fn discussion_id(note_id: u64) -> String {
    format!(
        "{:040x}",
        u128::from(note_id).wrapping_mul(0x9e37_79b9_7f4a_7c15)
    )
}

async fn create_discussion(
    shared: &Arc<Shared>,
    req: &Req,
    project: &RepoState,
    c: &Change,
) -> Response {
    let body = match note_body(req) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let position = req.json.as_ref().and_then(|b| b.get("position")).cloned();
    if let Some(p) = &position
        && let Err(reason) = check_position(shared, project, c, p).await
    {
        shared.fail_validation(Forge::GitLab, req, reason);
        return error(Forge::GitLab, StatusCode::BAD_REQUEST, LINE_CODE);
    }
    let (note, at) = add_note(
        shared,
        project,
        c,
        BOT_USERNAME,
        body.clone(),
        true,
        position.clone(),
    );
    if let (Some(p), Some(id)) = (position, &note.discussion_id) {
        shared.state().discussions.push(Discussion {
            id: id.clone(),
            project: project.repo.path.clone(),
            mr_iid: c.number,
            note_id: note.id,
            body,
            position: p,
        });
    }
    shared.changed.notify_waiters();
    json(
        StatusCode::CREATED,
        &discussion_json(shared, &users(shared), &note, &at, c, project.repo.id),
    )
}

async fn check_position(
    shared: &Shared,
    project: &RepoState,
    c: &Change,
    p: &Value,
) -> Result<(), String> {
    let text = |k: &str| p.get(k).and_then(Value::as_str).map(str::to_owned);
    let line = |k: &str| -> Result<Option<u64>, String> {
        match p.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                .map(Some)
                .ok_or_else(|| format!("position.{k} is not a line number")),
        }
    };
    if text("position_type").as_deref() != Some("text") {
        return Err("position.position_type must be \"text\"".into());
    }
    let dir = shared.repo_dir(Forge::GitLab, &project.repo.path);
    let heads: Heads = git::heads(&dir, &c.source, &c.target).await?;
    for (field, want) in [
        ("base_sha", &heads.base),
        ("start_sha", &heads.start),
        ("head_sha", &heads.head),
    ] {
        if text(field).as_deref() != Some(want.as_str()) {
            return Err(format!(
                "position.{field} is {:?}, the merge request's diff_refs have {want}",
                text(field)
            ));
        }
    }
    let files = git::diff(&dir, &heads.base, &heads.head).await?;
    diff::check_gitlab(
        &files,
        &GitLabPosition {
            old_path: text("old_path"),
            new_path: text("new_path"),
            old_line: line("old_line")?,
            new_line: line("new_line")?,
        },
    )
}

/// Snapshot of what a webhook needs, taken under the lock.
struct HookContext {
    project: RepoState,
    change: Change,
    users: Vec<User>,
    heads: Heads,
    commit: git::CommitInfo,
}

async fn context(shared: &Shared, repo: &Repo, iid: u64) -> Result<HookContext, String> {
    let (project, change, users) = {
        let state = shared.state();
        let project = state
            .repo(Forge::GitLab, &repo.path)
            .cloned()
            .ok_or("no such project")?;
        let change = state
            .change(Forge::GitLab, repo.id, iid)
            .cloned()
            .ok_or("no such merge request")?;
        (project, change, state.users.clone())
    };
    let dir = shared.repo_dir(Forge::GitLab, &repo.path);
    let heads = git::heads(&dir, &change.source, &change.target).await?;
    let commit = git::commit_info(&dir, &heads.head).await?;
    Ok(HookContext {
        project,
        change,
        users,
        heads,
        commit,
    })
}

fn hook_user(users: &[User], id: u64) -> Value {
    let username = users
        .iter()
        .find(|u| u.id == id)
        .map_or_else(|| format!("user{id}"), |u| u.username.clone());
    json!({
        "id": id,
        "name": username,
        "username": username,
        "avatar_url": null,
        "email": "[REDACTED]",
    })
}

fn hook_project(shared: &Shared, repo: &Repo) -> Value {
    let web = web_url(shared, repo);
    let (ns, name) = namespace(repo);
    json!({
        "id": repo.id,
        "name": name,
        "description": null,
        "web_url": web,
        "avatar_url": null,
        "git_ssh_url": ssh_url(repo),
        "git_http_url": format!("{web}.git"),
        "namespace": ns,
        "visibility_level": 0,
        "path_with_namespace": repo.path,
        "default_branch": "main",
        "ci_config_path": null,
        "homepage": web,
        "url": ssh_url(repo),
        "ssh_url": ssh_url(repo),
        "http_url": format!("{web}.git"),
    })
}

fn hook_repository(shared: &Shared, repo: &Repo) -> Value {
    let (_, name) = namespace(repo);
    json!({
        "name": name,
        "url": ssh_url(repo),
        "description": null,
        "homepage": web_url(shared, repo),
    })
}

fn hook_mr_attributes(shared: &Shared, ctx: &HookContext) -> Value {
    let c = &ctx.change;
    let repo = &ctx.project.repo;
    let project = hook_project(shared, repo);
    let web = web_url(shared, repo);
    json!({
        "id": c.id,
        "iid": c.number,
        "title": c.title,
        "description": "",
        "state": if c.open { "opened" } else { "closed" },
        "created_at": c.created_at,
        "updated_at": c.updated_at,
        "source_branch": c.source,
        "target_branch": c.target,
        "source_project_id": repo.id,
        "target_project_id": repo.id,
        "author_id": c.author,
        "assignee_id": c.assignees.first(),
        "assignee_ids": c.assignees,
        "reviewer_ids": c.reviewers,
        "merge_status": "unchecked",
        "detailed_merge_status": "checking",
        "url": format!("{web}/-/merge_requests/{}", c.number),
        "source": project,
        "target": project,
        "last_commit": {
            "id": ctx.heads.head,
            "message": ctx.commit.message,
            "title": ctx.commit.title,
            "timestamp": ctx.commit.timestamp,
            "url": format!("{web}/-/commit/{}", ctx.heads.head),
            "author": {"name": ctx.commit.author_name, "email": ctx.commit.author_email},
        },
        "work_in_progress": c.draft,
        "draft": c.draft,
        "blocking_discussions_resolved": true,
        "first_contribution": false,
        "head_pipeline_id": null,
        "labels": [],
    })
}

/// The `Merge Request Hook` payload; records what it announced so the next
/// `update` knows its `oldrev` and assignee changes.
pub(crate) async fn mr_event(
    shared: &Shared,
    repo: &Repo,
    iid: u64,
    action: MrAction,
) -> Result<Value, String> {
    if action == MrAction::Reopen
        && let Some(c) = shared.state().change_mut(Forge::GitLab, repo.id, iid)
    {
        c.open = true;
    }
    let ctx = context(shared, repo, iid).await?;
    let c = &ctx.change;
    let people =
        |ids: &[u64]| -> Vec<Value> { ids.iter().map(|i| hook_user(&ctx.users, *i)).collect() };
    let stamp = |prev: Value, cur: Value| json!({"previous": prev, "current": cur});
    let mut attributes = hook_mr_attributes(shared, &ctx);
    let (name, changes) = match action {
        MrAction::Open => (
            "open",
            json!({
                "id": stamp(Value::Null, c.id.into()),
                "iid": stamp(Value::Null, c.number.into()),
                "title": stamp(Value::Null, c.title.clone().into()),
                "state_id": stamp(Value::Null, 1.into()),
                "created_at": stamp(Value::Null, c.created_at.clone().into()),
                "updated_at": stamp(Value::Null, c.updated_at.clone().into()),
            }),
        ),
        MrAction::Reopen => (
            "reopen",
            json!({
                "state_id": stamp(2.into(), 1.into()),
                "updated_at": stamp(c.created_at.clone().into(), c.updated_at.clone().into()),
            }),
        ),
        MrAction::Update => {
            let old = c
                .announced_head
                .clone()
                .unwrap_or_else(|| ctx.heads.base.clone());
            attributes["oldrev"] = Value::from(old);
            (
                "update",
                json!({"updated_at": stamp(c.created_at.clone().into(), c.updated_at.clone().into())}),
            )
        }
        MrAction::UpdateAssigneesOnly => {
            let mut changes = json!({
                "updated_at": stamp(c.created_at.clone().into(), c.updated_at.clone().into()),
            });
            if c.announced_reviewers != c.reviewers {
                changes["reviewers"] = json!({
                    "previous": people(&c.announced_reviewers),
                    "current": people(&c.reviewers),
                });
            }
            if c.announced_assignees != c.assignees || changes.get("reviewers").is_none() {
                changes["assignees"] = json!({
                    "previous": people(&c.announced_assignees),
                    "current": people(&c.assignees),
                });
            }
            ("update", changes)
        }
    };
    attributes["action"] = Value::from(name);
    if let Some(ch) = shared.state().change_mut(Forge::GitLab, repo.id, iid) {
        ch.announced_head = Some(ctx.heads.head.clone());
        ch.announced_assignees = ch.assignees.clone();
        ch.announced_reviewers = ch.reviewers.clone();
    }
    Ok(json!({
        "object_kind": "merge_request",
        "event_type": "merge_request",
        "user": hook_user(&ctx.users, c.author),
        "project": hook_project(shared, &ctx.project.repo),
        "object_attributes": attributes,
        "labels": [],
        "changes": changes,
        "repository": hook_repository(shared, &ctx.project.repo),
        "assignees": people(&c.assignees),
        "reviewers": people(&c.reviewers),
    }))
}

/// The `Note Hook` payload for a new note by the merge request's author
/// (added to the merge request).
pub(crate) async fn note_event(
    shared: &Shared,
    repo: &Repo,
    iid: u64,
    text: &str,
) -> Result<Value, String> {
    let ctx = context(shared, repo, iid).await?;
    let c = &ctx.change;
    let author = ctx
        .users
        .iter()
        .find(|u| u.id == c.author)
        .map_or_else(|| BOT_USERNAME.to_owned(), |u| u.username.clone());
    let (note, at) = add_note(
        shared,
        &ctx.project,
        c,
        &author,
        text.to_owned(),
        false,
        None,
    );
    let web = web_url(shared, repo);
    let mut mr = hook_mr_attributes(shared, &ctx);
    if let Some(o) = mr.as_object_mut() {
        o.remove("action");
    }
    Ok(json!({
        "object_kind": "note",
        "event_type": "note",
        "user": hook_user(&ctx.users, c.author),
        "project_id": repo.id,
        "project": hook_project(shared, repo),
        "object_attributes": {
            "id": note.id,
            "note": note.body,
            "noteable_type": "MergeRequest",
            "author_id": c.author,
            "created_at": at,
            "updated_at": at,
            "project_id": repo.id,
            "attachment": null,
            "line_code": null,
            "commit_id": "",
            "noteable_id": c.id,
            "system": false,
            "st_diff": null,
            "updated_by_id": null,
            "type": null,
            "position": null,
            "original_position": null,
            "resolved_at": null,
            "resolved_by_id": null,
            "discussion_id": discussion_id(note.id),
            "internal": false,
            "confidential": false,
            "url": format!("{web}/-/merge_requests/{}#note_{}", c.number, note.id),
            "action": "create",
        },
        "repository": hook_repository(shared, repo),
        "merge_request": mr,
    }))
}
