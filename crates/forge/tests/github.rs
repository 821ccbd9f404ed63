//! The GitHub implementation against a local server speaking the GitHub
//! REST subset each test needs (as an Enterprise Server API root).

mod support;

use ai_review_domain::{CommitSha, PlatformType, SecretString};
use ai_review_forge::{
    ChangeRequest, CommitState, Forge, ForgeError, ForgeUser, GitHub, InlineComment, UserRef,
    WebhookStatus, forge_for,
};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::*;

fn root(server: &Server) -> String {
    format!("{}/api/v3", server.base)
}

fn github(server: &Server) -> GitHub {
    GitHub::new(&root(server), SecretString::new(TOKEN), client())
        .expect("github")
        .with_retry_policy(fast_retry())
}

const REPO: &str = "/api/v3/repos/acme/app";

fn pr_json() -> Value {
    json!({
        "number": 7, "title": "Add b", "draft": false,
        "user": {"id": 11, "login": "alice"},
        "head": {"ref": "feature", "sha": HEAD},
        "base": {"ref": "main", "sha": BASE},
        "html_url": "https://gh/acme/app/pull/7",
        "assignees": [{"login": "alice", "id": 11}],
        "requested_reviewers": [{"login": "bob", "id": 12}],
    })
}

fn change() -> ChangeRequest {
    ChangeRequest {
        number: 7,
        title: "Add b".into(),
        author: ForgeUser {
            id: "11".into(),
            username: "alice".into(),
        },
        source_branch: "feature".into(),
        target_branch: "main".into(),
        base_sha: CommitSha::parse(BASE).expect("sha"),
        start_sha: CommitSha::parse(BASE).expect("sha"),
        head_sha: CommitSha::parse(HEAD).expect("sha"),
        draft: false,
        web_url: String::new(),
        assignee_ids: vec![],
        reviewer_ids: vec![],
    }
}

fn comment(line: u32, end_line: u32, fp: &str) -> InlineComment {
    InlineComment {
        path: "src/lib.rs".into(),
        old_path: None,
        line,
        end_line,
        end_old_line: None,
        body: format!("finding {fp}"),
        suggestion: None,
        fingerprint: fp.into(),
    }
}

#[tokio::test]
async fn lists_repositories_following_link_headers() {
    let base = Arc::new(Mutex::new(String::new()));
    let b2 = base.clone();
    let server = Server::start(Kind::GitHub, move |s| {
        assert_eq!(s.route(), ("GET", "/api/v3/user/repos"));
        assert_eq!(s.query["per_page"], "100");
        let page: usize = s.query["page"].parse().expect("page");
        let n = if page < 3 { 100 } else { 1 };
        let items: Vec<Value> = (0..n)
            .map(|i| {
                let id = (page - 1) * 100 + i + 1;
                json!({"id": id, "full_name": format!("acme/r{id}"), "name": format!("r{id}"),
                    "html_url": format!("https://gh/acme/r{id}"),
                    "clone_url": format!("https://gh/acme/r{id}.git"), "default_branch": "main"})
            })
            .collect();
        let root = format!("{}/api/v3/user/repos", b2.lock().expect("base"));
        let mut link = format!("<{root}?per_page=100&page=1>; rel=\"first\", <{root}?per_page=100&page=3>; rel=\"last\"");
        if page < 3 {
            link = format!("<{root}?per_page=100&page={}>; rel=\"next\", {link}", page + 1);
        }
        Reply::ok(Value::Array(items)).header("link", &link)
    })
    .await;
    *base.lock().expect("base") = server.base.clone();
    let repos = github(&server).list_projects().await.expect("repos");
    assert_eq!(repos.len(), 201);
    assert_eq!(server.seen().len(), 3);
    let r = &repos[200];
    assert_eq!(
        (r.external_id.as_str(), r.path.as_str(), r.name.as_str()),
        ("201", "acme/r201", "r201")
    );
    assert_eq!(r.clone_url.as_str(), "https://gh/acme/r201.git");
    assert_eq!(r.web_url, "https://gh/acme/r201");
    assert_eq!(r.default_branch.as_deref(), Some("main"));
}

#[tokio::test]
async fn a_next_link_to_another_host_is_not_followed() {
    let server = Server::start(Kind::GitHub, |_| {
        Reply::ok(json!([])).header(
            "link",
            "<https://evil.example/user/repos?page=2>; rel=\"next\"",
        )
    })
    .await;
    let e = github(&server)
        .list_projects()
        .await
        .expect_err("malformed");
    assert!(matches!(e, ForgeError::Malformed(_)), "{e}");
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test]
async fn gets_a_pull_request() {
    let server = Server::start(Kind::GitHub, |s| match s.route() {
        ("GET", "/api/v3/repos/acme/app/pulls/7") => Reply::ok(pr_json()),
        _ => Reply::message(404, "Not Found"),
    })
    .await;
    let forge = forge_for(
        PlatformType::Github,
        &root(&server),
        SecretString::new(TOKEN),
        client(),
    )
    .expect("forge");
    let c = forge.get_change("acme/app", 7).await.expect("pr");
    assert_eq!((c.number, c.title.as_str()), (7, "Add b"));
    assert_eq!(c.author.id, "11");
    assert_eq!(forge.user_ref(&c.author), UserRef::new("alice"));
    assert_eq!(
        (c.source_branch.as_str(), c.target_branch.as_str()),
        ("feature", "main")
    );
    assert_eq!(c.base_sha.as_str(), BASE);
    assert_eq!(c.start_sha, c.base_sha);
    assert_eq!(c.head_sha.as_str(), HEAD);
    assert!(!c.draft);
    assert_eq!(c.web_url, "https://gh/acme/app/pull/7");
    assert_eq!(c.assignee_ids, vec![UserRef::new("alice")]);
    assert_eq!(c.reviewer_ids, vec![UserRef::new("bob")]);

    let e = forge.get_change("acme/app", 8).await.expect_err("404");
    assert!(matches!(e, ForgeError::NotFound { .. }));
    let e = forge
        .get_change("app", 7)
        .await
        .expect_err("not owner/repo");
    assert!(matches!(e, ForgeError::InvalidArgument(_)));
    assert_eq!(server.seen().len(), 2);
}

#[tokio::test]
async fn summary_is_created_then_updated_then_recreated_when_deleted() {
    let comments: Arc<Mutex<Vec<(u64, String)>>> = Arc::default();
    let c2 = comments.clone();
    let created = Counter::default();
    let server = Server::start(Kind::GitHub, move |s| {
        let mut comments = c2.lock().expect("comments");
        let body = s.body["body"].as_str().unwrap_or_default().to_owned();
        match (s.method.as_str(), s.path.strip_prefix(REPO)) {
            ("POST", Some("/issues/7/comments")) => {
                let id = 500 + created.bump("c") as u64;
                comments.push((id, body.clone()));
                Reply::json(201, json!({"id": id, "body": body}))
            }
            ("PATCH", Some(rest)) if rest.starts_with("/issues/comments/") => {
                let id: u64 = rest["/issues/comments/".len()..].parse().expect("id");
                match comments.iter_mut().find(|(i, _)| *i == id) {
                    Some(c) => {
                        c.1 = body.clone();
                        Reply::ok(json!({"id": id, "body": body}))
                    }
                    None => Reply::message(404, "Not Found"),
                }
            }
            _ => Reply::message(404, "Not Found"),
        }
    })
    .await;
    let gh = github(&server);
    let id = gh
        .upsert_summary("acme/app", 7, None, "first")
        .await
        .expect("create");
    assert_eq!(id, "501");
    assert_eq!(
        gh.upsert_summary("acme/app", 7, Some(&id), "second")
            .await
            .expect("update"),
        id
    );
    assert_eq!(
        *comments.lock().expect("c"),
        vec![(501, "second".to_owned())]
    );
    comments.lock().expect("c").clear();
    let id2 = gh
        .upsert_summary("acme/app", 7, Some(&id), "third")
        .await
        .expect("recreate");
    assert_eq!(id2, "502");
    assert_eq!(comments.lock().expect("c").len(), 1);
}

/// A review's id and the comments it was created with.
type StoredReview = (u64, Vec<Value>);

/// Reviews on PR 7 at HEAD: RIGHT lines 3..=5 are in the diff. Created
/// review comments are kept for the comment listing.
fn review_server() -> impl Fn(&Seen) -> Reply + Send + Sync + 'static {
    let stored: Arc<Mutex<Vec<StoredReview>>> = Arc::default();
    move |s| {
        let mut stored = stored.lock().expect("stored");
        match (s.method.as_str(), s.path.strip_prefix(REPO)) {
            ("POST", Some("/pulls/7/reviews")) => {
                assert_eq!(s.body["commit_id"], HEAD);
                assert_eq!(s.body["event"], "COMMENT");
                assert!(s.body["body"].as_str().is_some_and(|b| !b.is_empty()));
                let comments = s.body["comments"].as_array().expect("comments").clone();
                for c in &comments {
                    assert_eq!(c["side"], "RIGHT");
                    let line = c["line"].as_u64().expect("line");
                    let start = c["start_line"].as_u64().unwrap_or(line);
                    if c.get("start_line").is_some() {
                        assert_eq!(c["start_side"], "RIGHT");
                        assert!(start < line);
                    }
                    if !(3..=5).contains(&line) || !(3..=5).contains(&start) {
                        return Reply::json(
                            422,
                            json!({"message": "Unprocessable Entity", "errors": ["Line could not be resolved"]}),
                        );
                    }
                }
                let id = 900 + stored.len() as u64;
                stored.push((id, comments));
                Reply::ok(json!({"id": id, "state": "COMMENTED"}))
            }
            ("GET", Some(rest)) if rest.starts_with("/pulls/7/reviews/") => {
                let id: u64 = rest["/pulls/7/reviews/".len()..]
                    .trim_end_matches("/comments")
                    .parse()
                    .expect("id");
                let Some((_, comments)) = stored.iter().find(|(i, _)| *i == id) else {
                    return Reply::message(404, "Not Found");
                };
                let list: Vec<Value> = comments
                    .iter()
                    .enumerate()
                    .map(|(n, c)| json!({"id": id * 10 + n as u64, "body": c["body"], "path": c["path"]}))
                    .rev()
                    .collect();
                Reply::ok(Value::Array(list))
            }
            _ => Reply::message(404, "Not Found"),
        }
    }
}

#[tokio::test]
async fn inline_comments_go_in_one_review() {
    let server = Server::start(Kind::GitHub, review_server()).await;
    let mut multi = comment(3, 5, "fp-multi");
    multi.suggestion = Some("a\nb\nc".into());
    let results = github(&server)
        .post_inline_comments("acme/app", &change(), &[comment(4, 4, "fp-one"), multi])
        .await
        .expect("review");
    let ids: Vec<Option<String>> = results
        .iter()
        .map(|r| r.as_ref().expect("posted").id.clone())
        .collect();
    assert_eq!(ids, [Some("9000".to_owned()), Some("9001".to_owned())]);
    let posts = server.seen_at("POST", "/pulls/7/reviews");
    assert_eq!(posts.len(), 1);
    let comments = posts[0].body["comments"].as_array().expect("comments");
    assert_eq!(comments[0]["line"], 4);
    assert!(comments[0].get("start_line").is_none());
    assert_eq!(comments[1]["line"], 5);
    assert_eq!(comments[1]["start_line"], 3);
    assert_eq!(
        comments[1]["body"],
        "finding fp-multi\n\n```suggestion\na\nb\nc\n```\n\n<!-- ai-review:fingerprint=fp-multi -->"
    );
}

#[tokio::test]
async fn a_refused_line_does_not_sink_the_other_comments() {
    let server = Server::start(Kind::GitHub, review_server()).await;
    let results = github(&server)
        .post_inline_comments(
            "acme/app",
            &change(),
            &[comment(3, 3, "a"), comment(42, 42, "b"), comment(5, 5, "c")],
        )
        .await
        .expect("partial");
    assert!(results[0].is_ok() && results[2].is_ok());
    let bad = results[1].as_ref().expect_err("refused");
    assert_eq!(bad.fingerprint, "b");
    assert!(
        matches!(&bad.error, ForgeError::Unprocessable { status: 422, message } if message.contains("Line could not be resolved")),
        "{bad}"
    );
    // The batch, then one review per comment.
    assert_eq!(server.seen_at("POST", "/pulls/7/reviews").len(), 1 + 3);

    // A single refused comment is reported, not raised.
    let one = github(&server)
        .post_inline_comments("acme/app", &change(), &[comment(42, 42, "z")])
        .await
        .expect("reported");
    assert!(one[0].is_err());
    // Invalid lines never reach the forge.
    let before = server.seen().len();
    let inverted = github(&server)
        .post_inline_comments("acme/app", &change(), &[comment(5, 3, "inv")])
        .await
        .expect("reported");
    assert!(matches!(
        inverted[0].as_ref().expect_err("invalid").error,
        ForgeError::InvalidArgument(_)
    ));
    assert_eq!(server.seen().len(), before);
    assert!(
        github(&server)
            .post_inline_comments("acme/app", &change(), &[])
            .await
            .expect("empty")
            .is_empty()
    );
}

#[tokio::test]
async fn comment_ids_are_absent_when_the_lookup_fails() {
    let inner = review_server();
    let server = Server::start(Kind::GitHub, move |s| {
        if s.method == "GET" {
            Reply::message(404, "Not Found")
        } else {
            inner(s)
        }
    })
    .await;
    let results = github(&server)
        .post_inline_comments("acme/app", &change(), &[comment(3, 3, "a")])
        .await
        .expect("posted");
    let p = results[0].as_ref().expect("posted");
    assert_eq!((p.fingerprint.as_str(), p.id.as_deref()), ("a", None));
}

#[tokio::test]
async fn statuses_use_the_ai_review_context() {
    let server = Server::start(Kind::GitHub, |s| {
        assert_eq!(s.route(), ("POST", &*format!("{REPO}/statuses/{HEAD}")));
        assert_eq!(s.body["context"], "ai-review");
        if s.body["description"]
            .as_str()
            .is_some_and(|d| d.chars().count() > 140)
        {
            return Reply::json(422, json!({"message": "Validation Failed"}));
        }
        Reply::json(201, json!({"id": 1, "state": s.body["state"]}))
    })
    .await;
    let gh = github(&server);
    let sha = CommitSha::parse(HEAD).expect("sha");
    for state in [
        CommitState::Pending,
        CommitState::Running,
        CommitState::Success,
        CommitState::Failure,
        CommitState::Error,
        CommitState::Canceled,
    ] {
        gh.set_status(
            "acme/app",
            &sha,
            state,
            &"é".repeat(300),
            Some("https://ai/r/1"),
        )
        .await
        .expect("status");
    }
    let seen = server.seen();
    let states: Vec<&str> = seen
        .iter()
        .map(|s| s.body["state"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        states,
        ["pending", "pending", "success", "failure", "error", "error"]
    );
    assert_eq!(seen[0].body["target_url"], "https://ai/r/1");
}

#[tokio::test]
async fn assignment_uses_logins() {
    let server = Server::start(Kind::GitHub, |s| match s.route() {
        ("POST", "/api/v3/repos/acme/app/issues/7/assignees") => Reply::json(201, pr_json()),
        ("POST", "/api/v3/repos/acme/app/pulls/7/requested_reviewers") => {
            Reply::json(201, pr_json())
        }
        _ => Reply::message(404, "Not Found"),
    })
    .await;
    let gh = github(&server);
    gh.assign(
        "acme/app",
        7,
        &[UserRef::new("alice")],
        &[UserRef::new("bob"), UserRef::new("carol")],
    )
    .await
    .expect("assign");
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].body, json!({"assignees": ["alice"]}));
    assert_eq!(seen[1].body, json!({"reviewers": ["bob", "carol"]}));
    gh.assign("acme/app", 7, &[], &[UserRef::new("bob")])
        .await
        .expect("reviewers only");
    gh.assign("acme/app", 7, &[], &[]).await.expect("nothing");
    assert_eq!(server.seen().len(), 3);
}

#[tokio::test]
async fn webhook_status_reads_the_hooks() {
    let url = "https://ai.example.com/api/webhooks/github";
    let server = Server::start(Kind::GitHub, move |s| match s.path.as_str() {
        "/api/v3/repos/acme/app/hooks" => Reply::ok(json!([
            {"id": 1, "active": true, "events": ["push"], "config": {"url": "https://other/x"}},
            {"id": 2, "active": true, "events": ["pull_request", "issue_comment"],
             "config": {"url": url, "content_type": "json"},
             "last_response": {"code": 200, "status": "active", "message": "OK"}},
        ])),
        "/api/v3/repos/acme/off/hooks" => Reply::ok(json!([
            {"id": 3, "active": false, "events": ["pull_request"], "config": {"url": url}},
        ])),
        "/api/v3/repos/acme/broken/hooks" => Reply::ok(json!([
            {"id": 4, "active": true, "events": ["*"], "config": {"url": url},
             "last_response": {"code": 500, "status": "failed"}},
        ])),
        "/api/v3/repos/acme/none/hooks" => Reply::ok(json!([])),
        "/api/v3/repos/acme/down/hooks" => Reply::message(500, "boom"),
        _ => Reply::message(404, "Not Found"),
    })
    .await;
    let gh = github(&server);
    let st = |p: &'static str| {
        let gh = gh.clone();
        async move { gh.webhook_status(p, url).await }
    };
    assert_eq!(st("acme/app").await.expect("ok"), WebhookStatus::Active);
    assert_eq!(st("acme/off").await.expect("ok"), WebhookStatus::Inactive);
    assert_eq!(st("acme/broken").await.expect("ok"), WebhookStatus::Error);
    assert_eq!(
        st("acme/none").await.expect("ok"),
        WebhookStatus::NotConfigured
    );
    assert_eq!(
        st("acme/private").await.expect("ok"),
        WebhookStatus::Unknown
    );
    assert!(matches!(
        st("acme/down").await.expect_err("5xx"),
        ForgeError::Server { status: 500, .. }
    ));
}

#[tokio::test]
async fn a_wrong_token_is_unauthorized() {
    let server = Server::start(Kind::GitHub, |_| Reply::ok(pr_json())).await;
    let gh = GitHub::new(&root(&server), SecretString::new("ghp_wrong"), client()).expect("gh");
    let e = gh.get_change("acme/app", 7).await.expect_err("401");
    assert!(matches!(&e, ForgeError::Unauthorized { message } if message == "Bad credentials"));
    assert!(!e.to_string().contains("ghp_wrong"));
    assert_eq!(server.seen().len(), 1);
    // The right token with the headers GitHub wants is accepted.
    github(&server).get_change("acme/app", 7).await.expect("ok");
}

#[tokio::test]
async fn secondary_rate_limits_are_retried() {
    let calls = Counter::default();
    let server = Server::start(Kind::GitHub, move |_| {
        if calls.bump("pr") == 1 {
            Reply::message(403, "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.")
        } else {
            Reply::ok(pr_json())
        }
    })
    .await;
    github(&server)
        .get_change("acme/app", 7)
        .await
        .expect("after retry");
    assert_eq!(server.seen().len(), 2);
}

#[tokio::test]
async fn primary_rate_limits_wait_for_the_reset() {
    let calls = Counter::default();
    let server = Server::start(Kind::GitHub, move |_| {
        if calls.bump("pr") == 1 {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .expect("clock")
                .as_secs();
            Reply::message(403, "API rate limit exceeded for user ID 1.")
                .header("x-ratelimit-remaining", "0")
                .header("x-ratelimit-reset", &(now + 2).to_string())
        } else {
            Reply::ok(pr_json())
        }
    })
    .await;
    let started = Instant::now();
    github(&server)
        .get_change("acme/app", 7)
        .await
        .expect("after reset");
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(server.seen().len(), 2);

    let forbidden = Server::start(Kind::GitHub, |_| {
        Reply::message(403, "Resource not accessible by personal access token")
            .header("x-ratelimit-remaining", "4000")
    })
    .await;
    let e = github(&forbidden)
        .get_change("acme/app", 7)
        .await
        .expect_err("403");
    assert!(matches!(e, ForgeError::Forbidden { .. }), "{e}");
    assert_eq!(forbidden.seen().len(), 1);
}

#[tokio::test]
async fn clone_credentials_use_x_access_token() {
    let gh = GitHub::new("", SecretString::new(TOKEN), client()).expect("gh");
    let c = gh.clone_credentials();
    assert_eq!(c.username, "x-access-token");
    assert_eq!(c.password.expose(), TOKEN);
    assert!(!format!("{gh:?} {c:?}").contains(TOKEN));
}
