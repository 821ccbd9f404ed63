//! The fake forge against real clients: reqwest for REST, `git` for smart
//! HTTP, a loopback receiver for webhooks.

use ai_review_fake_forge::{BOT_USERNAME, Failure, FakeForge, Forge, MrAction, PrAction, Repo};
use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const GL: &str = "glpat-fake-token";
const GH: &str = "ghs_fake_token";
const LINE_CODE: &str =
    "400 Bad request - Note {:line_code=>[\"can't be blank\", \"must be a valid line code\"]}";

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

async fn forge() -> FakeForge {
    FakeForge::start(GL, GH).await
}

fn gitlab_get(f: &FakeForge, path: &str) -> reqwest::RequestBuilder {
    http()
        .get(format!("{}/api/v4{path}", f.gitlab_url()))
        .header("PRIVATE-TOKEN", GL)
}

fn gitlab(f: &FakeForge, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
    http()
        .request(method, format!("{}/api/v4{path}", f.gitlab_url()))
        .bearer_auth(GL)
}

fn github(f: &FakeForge, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
    http()
        .request(method, format!("{}{path}", f.github_api_url()))
        .bearer_auth(GH)
        .header("Accept", "application/vnd.github+json")
        .header("User-Agent", "ai-review-test")
}

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("<none>")
        .to_owned()
}

async fn body(r: reqwest::Response) -> Value {
    r.json().await.expect("json body")
}

const LIB_V1: &str = "fn one() {}\n\nfn two() {}\n\nfn three() {}\n";
const LIB_V2: &str = "fn one() {}\n\nfn two() { todo() }\n\nfn three() {}\nfn four() {}\n";

/// A repository with a `feature` branch changing `src/lib.rs`: line 3 is
/// replaced (old 3 removed, new 3 added), line 6 is added, lines 1-2, 4-5
/// are context.
fn project(f: &FakeForge, forge: Forge, path: &str) -> Repo {
    let repo = f.create_repo(
        forge,
        path,
        &[("src/lib.rs", LIB_V1), ("README.md", "# app\n")],
    );
    f.push_commit(
        &repo,
        "feature",
        &[("src/lib.rs", Some(LIB_V2))],
        "Change two, add four",
    );
    repo
}

#[tokio::test]
async fn gitlab_projects_are_paginated_with_gitlabs_headers() {
    let f = forge().await;
    for name in ["a", "b", "c"] {
        f.create_repo(Forge::GitLab, &format!("acme/{name}"), &[("x", "x\n")]);
    }
    f.create_repo(Forge::GitHub, "acme/not-gitlab", &[("x", "x\n")]);
    let r = gitlab_get(&f, "/projects?membership=true&per_page=2&page=1")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-page"), "1");
    assert_eq!(header(&r, "x-per-page"), "2");
    assert_eq!(header(&r, "x-next-page"), "2");
    assert_eq!(header(&r, "x-prev-page"), "");
    assert_eq!(header(&r, "x-total"), "3");
    assert_eq!(header(&r, "x-total-pages"), "2");
    let link = header(&r, "link");
    assert!(
        link.contains(&format!(
            "<{}/api/v4/projects?membership=true&per_page=2&page=2>; rel=\"next\"",
            f.gitlab_url()
        )),
        "{link}"
    );
    assert!(link.contains("rel=\"last\""), "{link}");
    let v = body(r).await;
    let names: Vec<&str> = v
        .as_array()
        .expect("array")
        .iter()
        .map(|p| p["path_with_namespace"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(names, ["acme/c", "acme/b"], "newest first, as GitLab");
    let r = gitlab_get(&f, "/projects?membership=true&per_page=2&page=2")
        .send()
        .await
        .expect("send");
    assert_eq!(header(&r, "x-next-page"), "");
    assert_eq!(header(&r, "x-prev-page"), "1");
    let v = body(r).await;
    assert_eq!(v[0]["path_with_namespace"], "acme/a");
    assert_eq!(
        v[0]["http_url_to_repo"],
        format!("{}/acme/a.git", f.gitlab_url())
    );
    assert_eq!(v[0]["namespace"]["full_path"], "acme");
    let id = v[0]["id"].as_u64().expect("id");
    let by_id = body(
        gitlab_get(&f, &format!("/projects/{id}"))
            .send()
            .await
            .expect("send"),
    )
    .await;
    let by_path = body(
        gitlab_get(&f, "/projects/acme%2Fa")
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(by_id, by_path);
    assert_eq!(by_id["default_branch"], "main");
    let r = gitlab_get(&f, "/projects/acme%2Fnope")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 404);
    assert_eq!(body(r).await, json!({"message": "404 Project Not Found"}));
    let r = gitlab_get(&f, "/projects?per_page=x")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn gitlab_refuses_missing_and_wrong_tokens() {
    let f = forge().await;
    for r in [
        http().get(format!("{}/api/v4/projects", f.gitlab_url())),
        http()
            .get(format!("{}/api/v4/projects", f.gitlab_url()))
            .header("PRIVATE-TOKEN", "wrong"),
        http()
            .get(format!("{}/api/v4/projects", f.gitlab_url()))
            .bearer_auth(GH),
    ] {
        let r = r.send().await.expect("send");
        assert_eq!(r.status(), 401);
        assert_eq!(body(r).await, json!({"message": "401 Unauthorized"}));
    }
    let r = gitlab(&f, reqwest::Method::GET, "/projects")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200, "Bearer works too");
}

#[tokio::test]
async fn github_requires_a_user_agent_an_accept_and_a_token() {
    let f = forge().await;
    f.create_repo(Forge::GitHub, "acme/app", &[("x", "x\n")]);
    let url = format!("{}/repos/acme/app", f.github_api_url());
    let no_agent = http()
        .get(&url)
        .bearer_auth(GH)
        .header("Accept", "application/vnd.github+json")
        .send()
        .await
        .expect("send");
    assert_eq!(no_agent.status(), 403);
    let no_accept = http()
        .get(&url)
        .bearer_auth(GH)
        .header("User-Agent", "t")
        .send()
        .await
        .expect("send");
    assert_eq!(no_accept.status(), 403);
    let base = || {
        http()
            .get(&url)
            .header("User-Agent", "t")
            .header("Accept", "application/json")
    };
    let r = base().send().await.expect("send");
    assert_eq!(r.status(), 401);
    assert_eq!(body(r).await["message"], "Requires authentication");
    let r = base().bearer_auth("nope").send().await.expect("send");
    assert_eq!(r.status(), 401);
    assert_eq!(body(r).await["message"], "Bad credentials");
    let r = base()
        .header("Authorization", format!("token {GH}"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let v = body(r).await;
    assert_eq!(v["full_name"], "acme/app");
    assert_eq!(v["clone_url"], format!("{}/acme/app.git", f.github_url()));
    assert_eq!(v["owner"]["login"], "acme");
    let r = github(&f, reqwest::Method::GET, "/repos/acme/nope")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn github_repositories_are_paginated_with_link_headers() {
    let f = forge().await;
    for name in ["c", "a", "b"] {
        f.create_repo(Forge::GitHub, &format!("acme/{name}"), &[("x", "x\n")]);
    }
    let r = github(&f, reqwest::Method::GET, "/user/repos?per_page=2")
        .send()
        .await
        .expect("send");
    let link = header(&r, "link");
    let api = f.github_api_url();
    assert_eq!(
        link,
        format!(
            "<{api}/user/repos?per_page=2&page=2>; rel=\"next\", <{api}/user/repos?per_page=2&page=2>; rel=\"last\""
        )
    );
    let v = body(r).await;
    assert_eq!(v[0]["full_name"], "acme/a");
    assert_eq!(v[1]["full_name"], "acme/b");
    let r = github(&f, reqwest::Method::GET, "/user/repos?per_page=2&page=2")
        .send()
        .await
        .expect("send");
    let link = header(&r, "link");
    assert!(
        link.contains("rel=\"prev\"") && link.contains("rel=\"first\""),
        "{link}"
    );
    assert!(!link.contains("rel=\"next\""), "{link}");
    assert_eq!(body(r).await[0]["full_name"], "acme/c");
    let r = github(&f, reqwest::Method::GET, "/user/repos")
        .send()
        .await
        .expect("send");
    assert_eq!(header(&r, "link"), "<none>", "one page has no Link");
}

#[tokio::test]
async fn gitlab_merge_requests_carry_diff_refs_and_discussion_positions_are_validated() {
    let f = forge().await;
    let repo = project(&f, Forge::GitLab, "acme/app");
    let iid = f.open_merge_request(&repo, "feature", "main", "Change two", "alice", true);
    let mr = body(
        gitlab_get(&f, &format!("/projects/{}/merge_requests/{iid}", repo.id))
            .send()
            .await
            .expect("send"),
    )
    .await;
    let head = f.branch_head(&repo, "feature").expect("head");
    let main = f.branch_head(&repo, "main").expect("main");
    assert_eq!(mr["sha"], head.as_str());
    assert_eq!(
        mr["diff_refs"],
        json!({"base_sha": main, "start_sha": main, "head_sha": head})
    );
    assert_eq!(mr["author"]["username"], "alice");
    assert_eq!(mr["author"]["id"], f.user_id("alice"));
    assert_eq!(mr["draft"], true);
    assert_eq!(mr["source_branch"], "feature");
    let url = format!("/projects/acme%2Fapp/merge_requests/{iid}/discussions");
    let position = |old: Value, new: Value| {
        json!({
            "body": "finding",
            "position": {
                "position_type": "text",
                "base_sha": main, "start_sha": main, "head_sha": head,
                "old_path": "src/lib.rs", "new_path": "src/lib.rs",
                "old_line": old, "new_line": new,
            }
        })
    };
    for (old, new) in [
        (Value::Null, json!(3)),
        (json!(3), Value::Null),
        (json!(4), json!(4)),
        (Value::Null, json!(6)),
    ] {
        let r = gitlab(&f, reqwest::Method::POST, &url)
            .json(&position(old.clone(), new.clone()))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 201, "old {old} new {new}");
        let v = body(r).await;
        assert_eq!(v["notes"][0]["type"], "DiffNote");
        assert_eq!(v["individual_note"], false);
        assert_eq!(v["id"].as_str().map(str::len), Some(40));
    }
    assert!(f.validation_failures().is_empty());
    for (old, new) in [
        (Value::Null, json!(4)),  // context line needs both numbers
        (json!(2), json!(3)),     // added line with an old_line
        (Value::Null, json!(40)), // not in the diff
        (json!(5), json!(6)),     // added line is not context
    ] {
        let r = gitlab(&f, reqwest::Method::POST, &url)
            .json(&position(old.clone(), new.clone()))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 400, "old {old} new {new}");
        assert_eq!(body(r).await, json!({"message": LINE_CODE}));
    }
    let mut wrong_path = position(Value::Null, json!(3));
    wrong_path["position"]["new_path"] = json!("README.md");
    wrong_path["position"]["old_path"] = json!("README.md");
    let r = gitlab(&f, reqwest::Method::POST, &url)
        .json(&wrong_path)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400, "README.md is not in the diff");
    f.push_commit(
        &repo,
        "feature",
        &[("src/lib.rs", Some(LIB_V2.replace("four", "five").as_str()))],
        "Rename",
    );
    let r = gitlab(&f, reqwest::Method::POST, &url)
        .json(&position(Value::Null, json!(3)))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400, "head_sha is stale after a push");
    let failures = f.validation_failures();
    assert_eq!(failures.len(), 6);
    assert!(
        failures[5].reason.contains("head_sha"),
        "{}",
        failures[5].reason
    );
    assert!(
        failures[0].reason.contains("old_line None"),
        "{}",
        failures[0].reason
    );
    assert_eq!(failures[0].forge, Forge::GitLab);
    assert_eq!(
        failures[0]
            .body
            .as_ref()
            .map(|b| &b["position"]["new_line"]),
        Some(&json!(4))
    );
    let discussions = f.discussions();
    assert_eq!(discussions.len(), 4);
    assert_eq!(discussions[0].position["new_line"], 3);
    assert_eq!(discussions[0].project, "acme/app");
    assert_eq!(discussions[0].mr_iid, iid);
    let notes = body(
        gitlab_get(
            &f,
            &format!("/projects/{}/merge_requests/{iid}/notes?sort=asc", repo.id),
        )
        .send()
        .await
        .expect("send"),
    )
    .await;
    assert_eq!(notes.as_array().map(Vec::len), Some(4));
    assert_eq!(notes[0]["position"]["new_line"], 3);
    assert_eq!(notes[0]["author"]["username"], BOT_USERNAME);
}

#[tokio::test]
async fn gitlab_notes_are_created_updated_and_listed_newest_first() {
    let f = forge().await;
    let repo = project(&f, Forge::GitLab, "acme/app");
    let iid = f.open_merge_request(&repo, "feature", "main", "Change", "alice", false);
    let notes = format!("/projects/{}/merge_requests/{iid}/notes", repo.id);
    let mut ids = Vec::new();
    for text in ["summary v1", "second"] {
        let r = gitlab(&f, reqwest::Method::POST, &notes)
            .json(&json!({"body": text}))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 201);
        let v = body(r).await;
        assert_eq!(v["body"], text);
        assert_eq!(v["noteable_iid"], iid);
        ids.push(v["id"].as_u64().expect("id"));
    }
    let r = gitlab(&f, reqwest::Method::PUT, &format!("{notes}/{}", ids[0]))
        .json(&json!({"body": "summary v2"}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(body(r).await["body"], "summary v2");
    let r = gitlab_get(&f, &format!("{notes}?per_page=1"))
        .send()
        .await
        .expect("send");
    assert_eq!(header(&r, "x-total"), "2");
    assert_eq!(
        body(r).await[0]["body"],
        "second",
        "newest first by default"
    );
    for bad in [json!({}), json!({"body": "  "})] {
        let r = gitlab(&f, reqwest::Method::POST, &notes)
            .json(&bad)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 400, "{bad}");
    }
    let url = "http://127.0.0.1:9/unreachable";
    f.send_gitlab_note_event(url, "s", &repo, iid, "/ai-review")
        .await;
    let human = f
        .notes()
        .into_iter()
        .find(|n| n.author == "alice")
        .expect("alice's note");
    let r = gitlab(&f, reqwest::Method::PUT, &format!("{notes}/{}", human.id))
        .json(&json!({"body": "hijack"}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 403, "only the author edits a note");
    let r = gitlab(&f, reqwest::Method::PUT, &format!("{notes}/999999"))
        .json(&json!({"body": "x"}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 404);
    let recorded = f.notes();
    assert_eq!(recorded[0].body, "summary v2");
    assert_eq!(recorded[0].previous_bodies, ["summary v1"]);
    assert_eq!(recorded[2].body, "/ai-review");
}

#[tokio::test]
async fn gitlab_assignees_and_reviewers_are_updated_and_hooks_listed() {
    let f = forge().await;
    let repo = project(&f, Forge::GitLab, "acme/app");
    let iid = f.open_merge_request(&repo, "feature", "main", "Change", "alice", false);
    let alice = f.user_id("alice");
    let bob = f.user_id("bob");
    let r = gitlab(
        &f,
        reqwest::Method::PUT,
        &format!("/projects/{}/merge_requests/{iid}", repo.id),
    )
    .json(&json!({"assignee_ids": [alice], "reviewer_ids": [bob, 4242]}))
    .send()
    .await
    .expect("send");
    assert_eq!(r.status(), 200);
    let v = body(r).await;
    assert_eq!(v["assignees"][0]["username"], "alice");
    assert_eq!(v["assignee"]["id"], alice);
    let reviewers: Vec<&Value> = v["reviewers"]
        .as_array()
        .expect("reviewers")
        .iter()
        .collect();
    assert_eq!(
        reviewers.len(),
        1,
        "unknown user ids are dropped, as GitLab does"
    );
    let updates = f.mr_updates();
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].assignee_ids, Some(vec![alice]));
    assert_eq!(updates[0].reviewer_ids, Some(vec![bob, 4242]));
    let r = gitlab(
        &f,
        reqwest::Method::PUT,
        &format!("/projects/{}/merge_requests/{iid}", repo.id),
    )
    .json(&json!({"assignee_ids": "alice"}))
    .send()
    .await
    .expect("send");
    assert_eq!(r.status(), 400);
    let r = gitlab_get(&f, &format!("/projects/{}/merge_requests/99", repo.id))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 404);
    f.add_hook(
        &repo,
        "http://server/api/webhooks/gitlab",
        &["merge_requests_events", "note_events"],
    );
    let hooks = body(
        gitlab_get(&f, &format!("/projects/{}/hooks", repo.id))
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(hooks[0]["url"], "http://server/api/webhooks/gitlab");
    assert_eq!(hooks[0]["merge_requests_events"], true);
    assert_eq!(hooks[0]["push_events"], false);
}

#[tokio::test]
async fn github_reviews_are_validated_against_the_diff() {
    let f = forge().await;
    let repo = project(&f, Forge::GitHub, "acme/app");
    let n = f.open_pull_request(&repo, "feature", "main", "Change two", "alice", false);
    let pr = body(
        github(
            &f,
            reqwest::Method::GET,
            &format!("/repos/acme/app/pulls/{n}"),
        )
        .send()
        .await
        .expect("send"),
    )
    .await;
    let head = f.branch_head(&repo, "feature").expect("head");
    assert_eq!(pr["head"]["sha"], head.as_str());
    assert_eq!(pr["head"]["ref"], "feature");
    assert_eq!(pr["base"]["ref"], "main");
    assert_eq!(
        pr["base"]["sha"],
        f.branch_head(&repo, "main").expect("main").as_str()
    );
    assert_eq!(pr["user"]["login"], "alice");
    assert_eq!(pr["draft"], false);
    let url = format!("/repos/acme/app/pulls/{n}/reviews");
    let review = |commit: &str, comments: Value| json!({"commit_id": commit, "body": "Review", "event": "COMMENT", "comments": comments});
    let good = json!([
        {"path": "src/lib.rs", "line": 3, "side": "RIGHT", "body": "added"},
        {"path": "src/lib.rs", "line": 3, "side": "LEFT", "body": "removed"},
        {"path": "src/lib.rs", "line": 6, "body": "side defaults to RIGHT"},
        {"path": "src/lib.rs", "start_line": 1, "line": 4, "side": "RIGHT", "body": "range"},
    ]);
    let r = github(&f, reqwest::Method::POST, &url)
        .json(&review(&head, good))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let v = body(r).await;
    assert_eq!(v["state"], "COMMENTED");
    assert_eq!(v["commit_id"], head.as_str());
    for (commit, comments) in [
        ("0".repeat(40), json!([])),
        (
            head.clone(),
            json!([{"path": "src/lib.rs", "line": 30, "side": "RIGHT", "body": "x"}]),
        ),
        (
            head.clone(),
            json!([{"path": "README.md", "line": 1, "side": "RIGHT", "body": "x"}]),
        ),
        (
            head.clone(),
            json!([{"path": "src/lib.rs", "line": 6, "side": "LEFT", "body": "x"}]),
        ),
        (
            head.clone(),
            json!([{"path": "src/lib.rs", "start_line": 4, "line": 4, "body": "x"}]),
        ),
        (
            head.clone(),
            json!([{"path": "src/lib.rs", "line": 3, "side": "MIDDLE", "body": "x"}]),
        ),
    ] {
        let r = github(&f, reqwest::Method::POST, &url)
            .json(&review(&commit, comments.clone()))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 422, "{comments}");
        let v = body(r).await;
        assert_eq!(v["message"], "Unprocessable Entity");
        assert_eq!(v["errors"], json!(["Line could not be resolved"]));
    }
    let r = github(&f, reqwest::Method::POST, &url)
        .json(&json!({"event": "REQUEST_CHANGES"}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 422, "REQUEST_CHANGES needs a body");
    let failures = f.validation_failures();
    assert_eq!(failures.len(), 7);
    assert!(
        failures[0].reason.contains("commit_id"),
        "{}",
        failures[0].reason
    );
    assert!(
        failures[4].reason.contains("precede"),
        "{}",
        failures[4].reason
    );
    let reviews = f.reviews();
    assert_eq!(reviews.len(), 1);
    assert_eq!(reviews[0].comments.len(), 4);
    assert_eq!(reviews[0].comments[3].start_line, Some(1));
    assert_eq!(reviews[0].comments[2].side, "RIGHT");
    let listed = body(
        github(&f, reqwest::Method::GET, &url)
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
    assert_eq!(listed[0]["user"]["login"], BOT_USERNAME);
}

#[tokio::test]
async fn github_issue_comments_and_statuses() {
    let f = forge().await;
    let repo = project(&f, Forge::GitHub, "acme/app");
    let n = f.open_pull_request(&repo, "feature", "main", "Change", "alice", false);
    let comments = format!("/repos/acme/app/issues/{n}/comments");
    let r = github(&f, reqwest::Method::POST, &comments)
        .json(&json!({"body": "summary v1"}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 201);
    let id = body(r).await["id"].as_u64().expect("id");
    let r = github(
        &f,
        reqwest::Method::PATCH,
        &format!("/repos/acme/app/issues/comments/{id}"),
    )
    .json(&json!({"body": "summary v2"}))
    .send()
    .await
    .expect("send");
    assert_eq!(r.status(), 200);
    let listed = body(
        github(&f, reqwest::Method::GET, &comments)
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(listed[0]["body"], "summary v2");
    assert_eq!(listed[0]["user"]["login"], BOT_USERNAME);
    let r = github(&f, reqwest::Method::POST, &comments)
        .json(&json!({"body": "x".repeat(65_537)}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 422, "GitHub's body limit");
    let recorded = f.issue_comments();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].previous_bodies, ["summary v1"]);
    let head = f.branch_head(&repo, "feature").expect("head");
    let status = |sha: &str, v: Value| {
        github(
            &f,
            reqwest::Method::POST,
            &format!("/repos/acme/app/statuses/{sha}"),
        )
        .json(&v)
    };
    let r = status(&head, json!({"state": "pending", "context": "ai-review", "description": "Reviewing", "target_url": "http://x/r/1"}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 201);
    assert_eq!(body(r).await["state"], "pending");
    for (sha, v) in [
        (head.clone(), json!({"state": "done"})),
        ("0".repeat(40), json!({"state": "success"})),
        (
            head.clone(),
            json!({"state": "success", "description": "d".repeat(141)}),
        ),
    ] {
        let r = status(&sha, v.clone()).send().await.expect("send");
        assert_eq!(r.status(), 422, "{v}");
    }
    let statuses = f.statuses();
    assert_eq!(statuses.len(), 1);
    assert_eq!(statuses[0].sha, head);
    assert_eq!(statuses[0].context, "ai-review");
    assert_eq!(f.validation_failures().len(), 4);
    f.add_hook(
        &repo,
        "http://server/api/webhooks/github",
        &["pull_request", "issue_comment"],
    );
    let hooks = body(
        github(&f, reqwest::Method::GET, "/repos/acme/app/hooks")
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(
        hooks[0]["config"]["url"],
        "http://server/api/webhooks/github"
    );
    assert_eq!(hooks[0]["events"], json!(["pull_request", "issue_comment"]));
}

type Seen = Arc<Mutex<Vec<(HeaderMap, String)>>>;

/// A webhook receiver on loopback answering `status`.
async fn receiver(status: u16) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let store = seen.clone();
    let app = axum::Router::new().fallback(move |headers: HeaderMap, body: String| {
        let store = store.clone();
        async move {
            store.lock().expect("lock").push((headers, body));
            (
                axum::http::StatusCode::from_u16(status).expect("status"),
                "received",
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/hook"), seen)
}

fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[tokio::test]
async fn github_webhooks_are_signed_and_redelivered_identically() {
    let f = forge().await;
    let repo = project(&f, Forge::GitHub, "acme/app");
    let n = f.open_pull_request(&repo, "feature", "main", "Change", "alice", true);
    let (url, seen) = receiver(202).await;
    let opened = f
        .send_github_pull_request_event(&url, "s3cret", &repo, n, PrAction::Opened)
        .await;
    assert_eq!(opened.status, Some(202));
    assert_eq!(opened.response, "received");
    {
        let seen = seen.lock().expect("lock");
        let (headers, raw) = &seen[0];
        let get = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or("");
        assert_eq!(
            get("x-hub-signature-256"),
            format!("sha256={}", hmac_hex("s3cret", raw.as_bytes()))
        );
        assert_ne!(
            get("x-hub-signature-256"),
            format!("sha256={}", hmac_hex("other", raw.as_bytes()))
        );
        assert_eq!(get("x-github-event"), "pull_request");
        assert!(get("user-agent").starts_with("GitHub-Hookshot/"));
        assert_eq!(get("x-github-delivery"), opened.id);
        assert_eq!(get("content-type"), "application/json");
        let v: Value = serde_json::from_str(raw).expect("json");
        assert_eq!(v["action"], "opened");
        assert_eq!(v["number"], n);
        assert_eq!(
            v["pull_request"]["head"]["sha"],
            f.branch_head(&repo, "feature").expect("head").as_str()
        );
        assert_eq!(v["pull_request"]["draft"], true);
        assert_eq!(v["repository"]["full_name"], "acme/app");
        assert_eq!(v["sender"]["login"], "alice");
    }
    let before = f.branch_head(&repo, "feature").expect("head");
    let after = f.push_commit(&repo, "feature", &[("new.txt", Some("new\n"))], "More");
    let sync = f
        .send_github_pull_request_event(&url, "s3cret", &repo, n, PrAction::Synchronize)
        .await;
    let v = sync.payload();
    assert_eq!(
        (v["before"].as_str(), v["after"].as_str()),
        (Some(before.as_str()), Some(after.as_str()))
    );
    let ready = f
        .send_github_pull_request_event(&url, "s3cret", &repo, n, PrAction::ReadyForReview)
        .await;
    assert_eq!(ready.payload()["pull_request"]["draft"], false);
    let comment = f
        .send_github_issue_comment_event(&url, "s3cret", &repo, n, "/ai-review")
        .await;
    let v = comment.payload();
    assert_eq!(comment.header("X-GitHub-Event"), Some("issue_comment"));
    assert_eq!(v["action"], "created");
    assert_eq!(v["comment"]["body"], "/ai-review");
    assert_eq!(v["issue"]["number"], n);
    assert!(v["issue"]["pull_request"]["url"].is_string());
    assert_eq!(f.issue_comments()[0].author, "alice");
    let again = f.redeliver(&comment).await;
    assert_eq!(again.id, comment.id);
    assert_eq!(again.body, comment.body);
    assert_eq!(again.headers, comment.headers);
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 5);
    assert_eq!(seen[3].1, seen[4].1);
    assert_eq!(
        seen[3].0.get("x-github-delivery"),
        seen[4].0.get("x-github-delivery")
    );
    assert_eq!(f.deliveries().len(), 5);
    let closed = f
        .send_github_pull_request_event(&url, "s3cret", &repo, n, PrAction::Closed)
        .await;
    assert_eq!(closed.payload()["pull_request"]["state"], "closed");
}

#[tokio::test]
async fn gitlab_webhooks_carry_the_token_and_the_changes() {
    let f = forge().await;
    let repo = project(&f, Forge::GitLab, "acme/app");
    let iid = f.open_merge_request(&repo, "feature", "main", "Change", "alice", false);
    let (url, seen) = receiver(200).await;
    let open = f
        .send_gitlab_mr_event(&url, "tok", &repo, iid, MrAction::Open)
        .await;
    assert_eq!(open.status, Some(200));
    let first_head = f.branch_head(&repo, "feature").expect("head");
    {
        let seen = seen.lock().expect("lock");
        let get = |k: &str| {
            seen[0]
                .0
                .get(k)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        assert_eq!(get("x-gitlab-event"), "Merge Request Hook");
        assert_eq!(get("x-gitlab-token"), "tok");
        assert_eq!(get("idempotency-key"), open.id);
        assert_eq!(get("x-gitlab-event-uuid").len(), 36);
    }
    let v = open.payload();
    assert_eq!(v["object_kind"], "merge_request");
    assert_eq!(v["object_attributes"]["action"], "open");
    assert_eq!(v["object_attributes"]["iid"], iid);
    assert_eq!(
        v["object_attributes"]["last_commit"]["id"],
        first_head.as_str()
    );
    assert_eq!(
        v["object_attributes"]["last_commit"]["title"],
        "Change two, add four"
    );
    assert_eq!(v["object_attributes"]["draft"], false);
    assert_eq!(v["project"]["path_with_namespace"], "acme/app");
    assert_eq!(v["project"]["git_http_url"], f.clone_url(&repo));
    assert_eq!(v["user"]["username"], "alice");
    let head = f.push_commit(&repo, "feature", &[("new.txt", Some("n\n"))], "More");
    let update = f
        .send_gitlab_mr_event(&url, "tok", &repo, iid, MrAction::Update)
        .await;
    let v = update.payload();
    assert_eq!(v["object_attributes"]["action"], "update");
    assert_eq!(v["object_attributes"]["oldrev"], first_head.as_str());
    assert_eq!(v["object_attributes"]["last_commit"]["id"], head.as_str());
    let alice = f.user_id("alice");
    let r = gitlab(
        &f,
        reqwest::Method::PUT,
        &format!("/projects/{}/merge_requests/{iid}", repo.id),
    )
    .json(&json!({"assignee_ids": [alice]}))
    .send()
    .await
    .expect("send");
    assert_eq!(r.status(), 200);
    let assign = f
        .send_gitlab_mr_event(&url, "tok", &repo, iid, MrAction::UpdateAssigneesOnly)
        .await;
    let v = assign.payload();
    assert!(v["object_attributes"].get("oldrev").is_none());
    assert_eq!(v["changes"]["assignees"]["previous"], json!([]));
    assert_eq!(v["changes"]["assignees"]["current"][0]["username"], "alice");
    assert_eq!(v["assignees"][0]["id"], alice);
    let note = f
        .send_gitlab_note_event(&url, "tok", &repo, iid, "/ai-review please")
        .await;
    assert_eq!(note.header("X-Gitlab-Event"), Some("Note Hook"));
    let v = note.payload();
    assert_eq!(v["object_kind"], "note");
    assert_eq!(v["object_attributes"]["note"], "/ai-review please");
    assert_eq!(v["object_attributes"]["noteable_type"], "MergeRequest");
    assert_eq!(v["merge_request"]["iid"], iid);
    assert_eq!(v["merge_request"]["last_commit"]["id"], head.as_str());
    let again = f.redeliver(&note).await;
    assert_eq!(
        (again.id.as_str(), again.body.as_str()),
        (note.id.as_str(), note.body.as_str())
    );
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 5);
    assert_eq!(
        seen[3].0.get("idempotency-key"),
        seen[4].0.get("idempotency-key")
    );
    assert_eq!(seen[3].1, seen[4].1);
    let unreachable = f
        .send_gitlab_mr_event("http://127.0.0.1:9/x", "tok", &repo, iid, MrAction::Reopen)
        .await;
    assert_eq!(
        unreachable.status, None,
        "no answer: {}",
        unreachable.response
    );
}

async fn git(args: &[&str], cwd: &std::path::Path) -> std::process::Output {
    tokio::process::Command::new("git")
        .args(args)
        .current_dir(cwd)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .await
        .expect("run git")
}

fn with_credentials(url: &str, user: &str, token: &str) -> String {
    url.replacen("http://", &format!("http://{user}:{token}@"), 1)
}

#[tokio::test]
async fn git_clones_over_smart_http_only_with_credentials() {
    let f = forge().await;
    let lab = project(&f, Forge::GitLab, "acme/sub/app");
    let hub = project(&f, Forge::GitHub, "acme/app");
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = [
        (&lab, "oauth2", GL, "lab"),
        (&hub, "x-access-token", GH, "hub"),
    ];
    for (repo, user, token, name) in cases {
        let url = with_credentials(&f.clone_url(repo), user, token);
        let out = git(
            &["clone", "--quiet", "--branch", "feature", &url, name],
            dir.path(),
        )
        .await;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lib =
            std::fs::read_to_string(dir.path().join(name).join("src/lib.rs")).expect("cloned file");
        assert_eq!(lib, LIB_V2);
    }
    let sha = f.push_commit(&lab, "feature", &[("later.txt", Some("later\n"))], "Later");
    let out = git(
        &["fetch", "--quiet", "origin", "feature"],
        &dir.path().join("lab"),
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = git(&["rev-parse", "FETCH_HEAD"], &dir.path().join("lab")).await;
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), sha);
    for url in [
        f.clone_url(&lab),
        with_credentials(&f.clone_url(&lab), "oauth2", "wrong"),
        with_credentials(&f.clone_url(&lab), "x-access-token", GL),
        with_credentials(&f.clone_url(&hub), "oauth2", GH),
    ] {
        let out = git(&["clone", "--quiet", &url, "refused"], dir.path()).await;
        assert!(!out.status.success(), "{url} must be refused");
    }
    let r = http()
        .get(format!(
            "{}/info/refs?service=git-upload-pack",
            f.clone_url(&lab)
        ))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    assert_eq!(header(&r, "www-authenticate"), "Basic realm=\"GitLab\"");
    let git_requests: Vec<_> = f.requests().into_iter().filter(|r| r.git).collect();
    assert!(
        git_requests
            .iter()
            .any(|r| r.path.ends_with("/git-upload-pack") && r.status == Some(200))
    );
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// gzip with one stored (uncompressed) deflate block.
fn gzip_stored(data: &[u8]) -> Vec<u8> {
    let len = u16::try_from(data.len()).expect("small");
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff, 1];
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&(!len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&u32::try_from(data.len()).expect("small").to_le_bytes());
    out
}

fn pkt(line: &str) -> String {
    format!("{:04x}{line}", line.len() + 4)
}

#[tokio::test]
async fn a_gzip_upload_pack_request_is_inflated_by_http_backend() {
    let f = forge().await;
    let repo = project(&f, Forge::GitHub, "acme/app");
    let head = f.branch_head(&repo, "feature").expect("head");
    let request = format!(
        "{}0000{}",
        pkt(&format!("want {head} no-progress\n")),
        pkt("done\n")
    );
    let r = http()
        .post(format!("{}/git-upload-pack", f.clone_url(&repo)))
        .basic_auth("x-access-token", Some(GH))
        .header("Content-Type", "application/x-git-upload-pack-request")
        .header("Content-Encoding", "gzip")
        .body(gzip_stored(request.as_bytes()))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "content-type"),
        "application/x-git-upload-pack-result"
    );
    let bytes = r.bytes().await.expect("body");
    assert!(
        bytes.starts_with(b"0008NAK\n"),
        "{:?}",
        &bytes[..bytes.len().min(16)]
    );
    assert_eq!(&bytes[8..12], b"PACK");
}

#[tokio::test]
async fn queued_failures_come_in_order_per_route() {
    let f = forge().await;
    let repo = f.create_repo(Forge::GitLab, "acme/app", &[("x", "x\n")]);
    f.fail("GET /gitlab/api/v4/projects/*", Failure::Status(503))
        .fail("/gitlab/api/v4/projects/*", Failure::RetryAfter(7))
        .fail("POST /gitlab/api/v4/projects/*", Failure::Status(500));
    let path = format!("/projects/{}", repo.id);
    let r = gitlab_get(&f, "/projects").send().await.expect("send");
    assert_eq!(r.status(), 200, "the pattern needs one more segment");
    let r = gitlab_get(&f, &path).send().await.expect("send");
    assert_eq!(r.status(), 503);
    assert_eq!(body(r).await, json!({"message": "503 Service Unavailable"}));
    let r = gitlab_get(&f, &path).send().await.expect("send");
    assert_eq!(r.status(), 429);
    assert_eq!(header(&r, "retry-after"), "7");
    assert_eq!(
        gitlab_get(&f, &path).send().await.expect("send").status(),
        200,
        "the POST failure waits"
    );
    f.fail(
        "GET /github/api/v3/**",
        Failure::RateLimitReset {
            status: 403,
            reset_in_secs: 60,
        },
    );
    let r = github(&f, reqwest::Method::GET, "/user/repos")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 403);
    assert_eq!(header(&r, "x-ratelimit-remaining"), "0");
    let reset: u64 = header(&r, "x-ratelimit-reset").parse().expect("epoch");
    assert!(reset > 1_700_000_000);
    assert_eq!(
        github(&f, reqwest::Method::GET, "/user/repos")
            .send()
            .await
            .expect("send")
            .status(),
        200
    );
    f.fail("GET /gitlab/**", Failure::Delay(Duration::from_millis(300)));
    let t0 = Instant::now();
    assert_eq!(
        gitlab_get(&f, &path).send().await.expect("send").status(),
        200
    );
    assert!(t0.elapsed() >= Duration::from_millis(300));
    f.fail("GET /gitlab/**", Failure::Hang);
    let quick = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .expect("client");
    let r = quick
        .get(format!("{}/api/v4{path}", f.gitlab_url()))
        .header("PRIVATE-TOKEN", GL)
        .send()
        .await;
    assert!(r.is_err_and(|e| e.is_timeout()));
    let seen = f.requests();
    let last = seen.last().expect("recorded");
    assert_eq!(last.status, None, "never answered");
    let statuses: Vec<Option<u16>> = seen.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [
            Some(200),
            Some(503),
            Some(429),
            Some(200),
            Some(403),
            Some(200),
            Some(200),
            None
        ]
    );
}

#[tokio::test]
async fn every_request_is_recorded_with_its_headers_body_and_status() {
    let f = forge().await;
    let repo = project(&f, Forge::GitLab, "acme/app");
    let iid = f.open_merge_request(&repo, "feature", "main", "Change", "alice", false);
    gitlab(
        &f,
        reqwest::Method::POST,
        &format!("/projects/{}/merge_requests/{iid}/notes?x=1", repo.id),
    )
    .json(&json!({"body": "hello"}))
    .send()
    .await
    .expect("send");
    let seen = f
        .wait_until(Duration::from_secs(5), |f| {
            f.requests().first().is_some_and(|r| r.status.is_some())
        })
        .await;
    let r = &seen[0];
    assert_eq!(r.seq, 1);
    assert_eq!(r.forge, Some(Forge::GitLab));
    assert!(!r.git);
    assert_eq!(r.method, "POST");
    assert_eq!(
        r.path,
        format!(
            "/gitlab/api/v4/projects/{}/merge_requests/{iid}/notes",
            repo.id
        )
    );
    assert_eq!(r.query, "x=1");
    assert_eq!(
        r.header("Authorization"),
        Some(format!("Bearer {GL}").as_str())
    );
    assert_eq!(r.json, Some(json!({"body": "hello"})));
    assert_eq!(r.status, Some(201));
}

#[tokio::test]
async fn dropping_the_fake_releases_a_hung_request() {
    let f = forge().await;
    f.fail("**", Failure::Hang);
    let url = format!("{}/api/v4/projects", f.gitlab_url());
    let call = tokio::spawn(async move {
        http()
            .get(url)
            .header("PRIVATE-TOKEN", GL)
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    f.wait_until(Duration::from_secs(5), |f| !f.requests().is_empty())
        .await;
    drop(f);
    let status = tokio::time::timeout(Duration::from_secs(5), call)
        .await
        .expect("released")
        .expect("join");
    assert_eq!(status.ok(), Some(503));
}

#[tokio::test]
async fn gitlab_commit_statuses_are_validated_and_recorded() {
    let f = forge().await;
    let repo = project(&f, Forge::GitLab, "acme/app");
    let head = f.branch_head(&repo, "feature").expect("head");
    // The client sends the project as a URL-encoded path; numeric ids work too.
    let status = |project: &str, sha: &str, v: Value| {
        gitlab(
            &f,
            reqwest::Method::POST,
            &format!("/projects/{project}/statuses/{sha}"),
        )
        .json(&v)
    };
    let r = status(
        "acme%2Fapp",
        &head,
        json!({"state": "pending", "name": "ai-review", "description": "Reviewing", "target_url": "http://x/r/1"}),
    )
    .send()
    .await
    .expect("send");
    assert_eq!(r.status(), 201);
    let v = body(r).await;
    assert_eq!(v["status"], "pending");
    assert_eq!(v["name"], "ai-review");
    assert_eq!(v["sha"], head.as_str());
    assert_eq!(v["author"]["username"], BOT_USERNAME);
    let r = status(
        "acme%2Fapp",
        &head,
        json!({"state": "pending", "name": "ai-review"}),
    )
    .send()
    .await
    .expect("send");
    assert_eq!(r.status(), 400, "pending to pending is no transition");
    assert_eq!(
        body(r).await["message"],
        "Cannot transition status via :enqueue from :pending"
    );
    let r = status(
        &repo.id.to_string(),
        &head,
        json!({"state": "success", "name": "ai-review", "description": "d".repeat(255)}),
    )
    .send()
    .await
    .expect("send");
    assert_eq!(r.status(), 201);
    for (sha, v, code) in [
        (head.clone(), json!({"state": "failure"}), 400),
        (head.clone(), json!({"name": "ai-review"}), 400),
        ("0".repeat(40), json!({"state": "success"}), 404),
        (
            head.clone(),
            json!({"state": "failed", "description": "d".repeat(256)}),
            400,
        ),
    ] {
        let r = status("acme%2Fapp", &sha, v.clone())
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), code, "{v}");
    }
    let r = status("acme%2Fnope", &head, json!({"state": "success"}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 404);
    let r = http()
        .post(format!(
            "{}/api/v4/projects/acme%2Fapp/statuses/{head}",
            f.gitlab_url()
        ))
        .json(&json!({"state": "success"}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    let statuses = f.statuses();
    assert_eq!(statuses.len(), 2);
    assert_eq!(statuses[0].repo, "acme/app");
    assert_eq!(statuses[0].state, "pending");
    assert_eq!(statuses[0].context, "ai-review");
    assert_eq!(statuses[0].description.as_deref(), Some("Reviewing"));
    assert_eq!(statuses[0].target_url.as_deref(), Some("http://x/r/1"));
    assert_eq!(statuses[1].state, "success");
    assert_eq!(
        f.validation_failures().len(),
        4,
        "the transition conflict is not a validation failure"
    );
}

#[tokio::test]
async fn github_assignees_and_reviewers_are_requested() {
    let f = forge().await;
    let repo = project(&f, Forge::GitHub, "acme/app");
    let n = f.open_pull_request(&repo, "feature", "main", "Change", "alice", false);
    f.user_id("bob");
    f.user_id("carol");
    let r = github(
        &f,
        reqwest::Method::POST,
        &format!("/repos/acme/app/issues/{n}/assignees"),
    )
    .json(&json!({"assignees": ["bob", "nobody"]}))
    .send()
    .await
    .expect("send");
    assert_eq!(r.status(), 201);
    let v = body(r).await;
    assert_eq!(v["number"], n);
    assert_eq!(
        v["assignees"]
            .as_array()
            .expect("assignees")
            .iter()
            .map(|a| a["login"].clone())
            .collect::<Vec<_>>(),
        [json!("bob")],
        "unknown logins are ignored"
    );
    let reviewers = format!("/repos/acme/app/pulls/{n}/requested_reviewers");
    let r = github(&f, reqwest::Method::POST, &reviewers)
        .json(&json!({"reviewers": ["carol"]}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 201);
    let v = body(r).await;
    assert_eq!(v["requested_reviewers"][0]["login"], "carol");
    assert_eq!(v["assignees"][0]["login"], "bob");
    let r = github(&f, reqwest::Method::POST, &reviewers)
        .json(&json!({"reviewers": ["alice"]}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 422, "the author cannot review");
    assert_eq!(
        body(r).await["message"],
        "Review cannot be requested from pull request author."
    );
    let r = github(&f, reqwest::Method::POST, &reviewers)
        .json(&json!({"reviewers": "carol"}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 422);
    let r = github(
        &f,
        reqwest::Method::POST,
        "/repos/acme/app/issues/99/assignees",
    )
    .json(&json!({"assignees": ["bob"]}))
    .send()
    .await
    .expect("send");
    assert_eq!(r.status(), 404);
    let pr = body(
        github(
            &f,
            reqwest::Method::GET,
            &format!("/repos/acme/app/pulls/{n}"),
        )
        .send()
        .await
        .expect("send"),
    )
    .await;
    assert_eq!(pr["assignee"]["login"], "bob");
    assert_eq!(pr["requested_reviewers"][0]["login"], "carol");
    let assignments = f.assignments();
    assert_eq!(assignments.len(), 2);
    assert_eq!(assignments[0].repo, "acme/app");
    assert_eq!(assignments[0].number, n);
    assert_eq!(assignments[0].assignees, ["bob", "nobody"]);
    assert!(assignments[0].reviewers.is_empty());
    assert_eq!(assignments[1].reviewers, ["carol"]);
    assert_eq!(f.validation_failures().len(), 2);
}
