//! The GitLab implementation against a local server speaking the GitLab v4
//! subset each test needs.

mod support;

use ai_review_domain::{CommitSha, PlatformType, SecretString};
use ai_review_forge::{
    ChangeRequest, CommitState, Forge, ForgeError, ForgeUser, GitLab, InlineComment, UserRef,
    WebhookStatus, forge_for,
};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;

fn gitlab(server: &Server) -> GitLab {
    GitLab::new(&server.base, SecretString::new(TOKEN), client())
        .expect("gitlab")
        .with_retry_policy(fast_retry())
}

const MR: &str = "/api/v4/projects/acme%2Fapp/merge_requests/7";

fn mr_json(assignees: &[u64], reviewers: &[u64]) -> Value {
    json!({
        "id": 900, "iid": 7, "title": "Add b",
        "author": {"id": 11, "username": "alice", "name": "Alice"},
        "source_branch": "feature", "target_branch": "main",
        "sha": HEAD, "draft": true, "web_url": "https://gl/acme/app/-/merge_requests/7",
        "diff_refs": {"base_sha": BASE, "start_sha": START, "head_sha": HEAD},
        "assignees": assignees.iter().map(|i| json!({"id": i})).collect::<Vec<_>>(),
        "reviewers": reviewers.iter().map(|i| json!({"id": i})).collect::<Vec<_>>(),
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
        start_sha: CommitSha::parse(START).expect("sha"),
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
async fn lists_projects_across_pages() {
    let server = Server::start(Kind::GitLab, |s| {
        assert_eq!(s.route(), ("GET", "/api/v4/projects"));
        assert_eq!(s.query["membership"], "true");
        assert_eq!(s.query["per_page"], "100");
        let page: usize = s.query["page"].parse().expect("page");
        let n = if page < 3 { 100 } else { 50 };
        let items: Vec<Value> = (0..n)
            .map(|i| {
                let id = (page - 1) * 100 + i + 1;
                json!({
                    "id": id, "name": format!("p{id}"), "path_with_namespace": format!("g/p{id}"),
                    "web_url": format!("https://gl/g/p{id}"),
                    "http_url_to_repo": format!("https://gl/g/p{id}.git"),
                    "default_branch": if id == 250 { Value::Null } else { json!("main") },
                })
            })
            .collect();
        let next = if page < 3 {
            (page + 1).to_string()
        } else {
            String::new()
        };
        Reply::ok(Value::Array(items))
            .header("x-next-page", &next)
            .header("x-total-pages", "3")
    })
    .await;
    let projects = gitlab(&server).list_projects().await.expect("projects");
    assert_eq!(projects.len(), 250);
    assert_eq!(server.seen().len(), 3);
    let p = &projects[0];
    assert_eq!(
        (p.external_id.as_str(), p.path.as_str(), p.name.as_str()),
        ("1", "g/p1", "p1")
    );
    assert_eq!(p.clone_url.as_str(), "https://gl/g/p1.git");
    assert_eq!(p.web_url, "https://gl/g/p1");
    assert_eq!(p.default_branch.as_deref(), Some("main"));
    assert_eq!(projects[249].default_branch, None);
}

#[tokio::test]
async fn pagination_without_next_page_header_uses_total_pages() {
    let server = Server::start(Kind::GitLab, |s| {
        let page: usize = s.query["page"].parse().expect("page");
        let item = json!({"id": page, "name": "p", "path_with_namespace": "g/p",
            "web_url": "https://gl/g/p", "http_url_to_repo": "https://gl/g/p.git"});
        Reply::ok(json!([item])).header("x-total-pages", "2")
    })
    .await;
    assert_eq!(gitlab(&server).list_projects().await.expect("ok").len(), 2);
}

#[tokio::test]
async fn gets_a_change_with_its_shas() {
    let server = Server::start(Kind::GitLab, |s| match s.route() {
        ("GET", MR) => Reply::ok(mr_json(&[11, 12], &[13])),
        _ => Reply::message(404, "404 Not found"),
    })
    .await;
    let forge = forge_for(
        PlatformType::Gitlab,
        &server.base,
        SecretString::new(TOKEN),
        client(),
    )
    .expect("forge");
    let c = forge.get_change("acme/app", 7).await.expect("change");
    assert_eq!(c.number, 7);
    assert_eq!(c.title, "Add b");
    assert_eq!(c.author.username, "alice");
    assert_eq!(forge.user_ref(&c.author), UserRef::new("11"));
    assert_eq!(
        (c.source_branch.as_str(), c.target_branch.as_str()),
        ("feature", "main")
    );
    assert_eq!(c.base_sha.as_str(), BASE);
    assert_eq!(c.start_sha.as_str(), START);
    assert_eq!(c.head_sha.as_str(), HEAD);
    assert!(c.draft);
    assert_eq!(c.assignee_ids, vec![UserRef::new("11"), UserRef::new("12")]);
    assert_eq!(c.reviewer_ids, vec![UserRef::new("13")]);

    let missing = forge.get_change("acme/app", 8).await.expect_err("404");
    assert!(matches!(missing, ForgeError::NotFound { .. }), "{missing}");
    assert!(!missing.is_retryable());
    // Numeric ids go unencoded.
    let e = forge.get_change("42", 7).await.expect_err("404");
    assert!(matches!(e, ForgeError::NotFound { .. }));
    assert_eq!(
        server.seen()[2].path,
        "/api/v4/projects/42/merge_requests/7"
    );
}

#[tokio::test]
async fn a_change_without_diff_refs_is_not_ready() {
    let server = Server::start(Kind::GitLab, |_| {
        let mut mr = mr_json(&[], &[]);
        mr["diff_refs"] = Value::Null;
        Reply::ok(mr)
    })
    .await;
    let e = gitlab(&server)
        .get_change("acme/app", 7)
        .await
        .expect_err("not ready");
    assert!(matches!(e, ForgeError::NotReady(_)), "{e}");
    assert!(e.is_retryable());
}

#[tokio::test]
async fn summary_is_created_then_updated_then_recreated_when_deleted() {
    let notes: Arc<Mutex<Vec<(u64, String)>>> = Arc::default();
    let n2 = notes.clone();
    let created = Counter::default();
    let server = Server::start(Kind::GitLab, move |s| {
        let mut notes = n2.lock().expect("notes");
        let body = s.body["body"].as_str().unwrap_or_default().to_owned();
        match (s.method.as_str(), s.path.strip_prefix(MR)) {
            ("POST", Some("/notes")) => {
                let id = 99 + created.bump("note") as u64;
                notes.push((id, body.clone()));
                Reply::json(201, json!({"id": id, "body": body}))
            }
            ("PUT", Some(rest)) if rest.starts_with("/notes/") => {
                let id: u64 = rest["/notes/".len()..].parse().expect("id");
                match notes.iter_mut().find(|(i, _)| *i == id) {
                    Some(n) => {
                        n.1 = body.clone();
                        Reply::ok(json!({"id": id, "body": body}))
                    }
                    None => Reply::message(404, "404 Not found"),
                }
            }
            _ => Reply::message(404, "404 Not found"),
        }
    })
    .await;
    let gl = gitlab(&server);
    let id = gl
        .upsert_summary("acme/app", 7, None, "first")
        .await
        .expect("create");
    assert_eq!(id, "100");
    let id2 = gl
        .upsert_summary("acme/app", 7, Some(&id), "second")
        .await
        .expect("update");
    assert_eq!(id2, id);
    assert_eq!(
        *notes.lock().expect("notes"),
        vec![(100, "second".to_owned())]
    );

    notes.lock().expect("notes").clear();
    let id3 = gl
        .upsert_summary("acme/app", 7, Some(&id), "third")
        .await
        .expect("recreate");
    assert_eq!(id3, "101");
    assert_eq!(notes.lock().expect("notes").len(), 1);
    let methods: Vec<String> = server.seen().iter().map(|s| s.method.clone()).collect();
    assert_eq!(methods, ["POST", "PUT", "PUT", "POST"]);
}

/// Lines 3..=5 are added lines of src/lib.rs; line 10 is an unchanged
/// context line (old 8); anything else is not in the diff.
fn discussion_handler(s: &Seen) -> Reply {
    assert_eq!(s.route(), ("POST", &*format!("{MR}/discussions")));
    let p = &s.body["position"];
    assert_eq!(p["position_type"], "text");
    assert_eq!(p["base_sha"], BASE);
    assert_eq!(p["start_sha"], START);
    assert_eq!(p["head_sha"], HEAD);
    assert_eq!(p["new_path"], "src/lib.rs");
    assert_eq!(p["old_path"], "src/lib.rs");
    let new_line = p["new_line"].as_u64().expect("new_line");
    let old_line = p["old_line"].as_u64();
    let ok = match new_line {
        3..=5 => old_line.is_none(),
        10 => old_line == Some(8),
        _ => false,
    };
    if ok {
        Reply::json(
            201,
            json!({"id": format!("d{new_line}"), "notes": [{"id": 1, "body": s.body["body"]}]}),
        )
    } else {
        Reply::message(
            400,
            "400 Bad request - Note {:line_code=>[\"can't be blank\", \"must be a valid line code\"]}",
        )
    }
}

#[tokio::test]
async fn inline_comments_land_on_diff_lines_and_refusals_are_per_comment() {
    let server = Server::start(Kind::GitLab, discussion_handler).await;
    let mut multi = comment(3, 5, "fp-multi");
    multi.suggestion = Some("let a = 1;\nlet b = 2;\nlet c = 3;\n".into());
    let mut context = comment(10, 10, "fp-context");
    context.end_old_line = Some(8);
    let comments = [
        comment(4, 4, "fp-ok"),
        comment(99, 99, "fp-bad"),
        multi,
        context,
    ];
    let results = gitlab(&server)
        .post_inline_comments("acme/app", &change(), &comments)
        .await
        .expect("batch");
    assert_eq!(results.len(), 4);
    let ok = results[0].as_ref().expect("first");
    assert_eq!(
        (ok.fingerprint.as_str(), ok.id.as_deref()),
        ("fp-ok", Some("d4"))
    );
    let bad = results[1].as_ref().expect_err("second");
    assert_eq!(bad.fingerprint, "fp-bad");
    assert!(
        matches!(&bad.error, ForgeError::Unprocessable { status: 400, message } if message.contains("line_code")),
        "{bad}"
    );
    assert_eq!(
        results[2].as_ref().expect("third").id.as_deref(),
        Some("d5")
    );
    assert_eq!(
        results[3].as_ref().expect("fourth").id.as_deref(),
        Some("d10")
    );

    let seen = server.seen();
    assert_eq!(seen.len(), 4);
    let body = seen[2].body["body"].as_str().expect("body");
    assert_eq!(
        body,
        "finding fp-multi\n\n```suggestion:-2+0\nlet a = 1;\nlet b = 2;\nlet c = 3;\n```\n\n<!-- ai-review:fingerprint=fp-multi -->"
    );
}

#[tokio::test]
async fn a_refused_token_fails_the_whole_batch() {
    let server = Server::start(Kind::GitLab, discussion_handler).await;
    let gl = GitLab::new(&server.base, SecretString::new("tok-wrong"), client()).expect("gl");
    let e = gl
        .post_inline_comments(
            "acme/app",
            &change(),
            &[comment(4, 4, "a"), comment(5, 5, "b")],
        )
        .await
        .expect_err("401");
    assert!(matches!(e, ForgeError::Unauthorized { .. }));
    assert!(
        e.to_string()
            .contains("the token was refused; check the platform config's access token")
    );
    assert!(!e.to_string().contains("tok-wrong"));
    assert!(!format!("{gl:?}").contains("tok-wrong"));
    assert_eq!(server.seen().len(), 1, "401 is not retried");
}

#[tokio::test]
async fn a_failure_midway_marks_the_remaining_comments() {
    let calls = Counter::default();
    let server = Server::start(Kind::GitLab, move |s| {
        if calls.bump("d") == 1 {
            discussion_handler(s)
        } else {
            Reply::message(503, "down")
        }
    })
    .await;
    let results = gitlab(&server)
        .post_inline_comments(
            "acme/app",
            &change(),
            &[comment(3, 3, "a"), comment(4, 4, "b"), comment(5, 5, "c")],
        )
        .await
        .expect("partial");
    assert!(results[0].is_ok());
    for r in &results[1..] {
        let e = r.as_ref().expect_err("not posted");
        assert!(matches!(e.error, ForgeError::Server { status: 503, .. }));
    }
    // The second comment was tried 1 + 3 times, the third not at all.
    assert_eq!(server.seen().len(), 5);
}

#[tokio::test]
async fn statuses_map_states_and_tolerate_repeats() {
    let server = Server::start(Kind::GitLab, |s| {
        assert_eq!(s.method, "POST");
        assert_eq!(s.path, format!("/api/v4/projects/acme%2Fapp/statuses/{HEAD}"));
        assert_eq!(s.body["name"], "ai-review");
        if s.body["state"] == "running" && s.body["description"] == "again" {
            return Reply::message(
                400,
                "Cannot transition status via :run from :running (Reason(s): Status cannot transition via \"run\")",
            );
        }
        Reply::json(201, json!({"id": 1, "status": s.body["state"]}))
    })
    .await;
    let gl = gitlab(&server);
    let sha = CommitSha::parse(HEAD).expect("sha");
    for state in [
        CommitState::Pending,
        CommitState::Running,
        CommitState::Success,
        CommitState::Failure,
        CommitState::Error,
        CommitState::Canceled,
    ] {
        gl.set_status("acme/app", &sha, state, "Reviewing", Some("https://ai/r/1"))
            .await
            .expect("status");
    }
    gl.set_status("acme/app", &sha, CommitState::Running, "again", None)
        .await
        .expect("same state is fine");
    let seen = server.seen();
    let states: Vec<&str> = seen
        .iter()
        .map(|s| s.body["state"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        states,
        [
            "pending", "running", "success", "failed", "failed", "canceled", "running"
        ]
    );
    assert_eq!(seen[0].body["target_url"], "https://ai/r/1");
    assert_eq!(seen[0].body["description"], "Reviewing");
    assert!(seen[6].body.get("target_url").is_none());

    let long = "x".repeat(400);
    gl.set_status("acme/app", &sha, CommitState::Success, &long, None)
        .await
        .expect("long description");
    let d = server.seen()[7].body["description"]
        .as_str()
        .expect("d")
        .chars()
        .count();
    assert!(d <= 255, "{d}");
}

#[tokio::test]
async fn assignment_adds_to_the_current_users() {
    let server = Server::start(Kind::GitLab, |s| match s.route() {
        ("GET", MR) => Reply::ok(mr_json(&[11], &[])),
        ("PUT", MR) => Reply::ok(mr_json(&[11, 12], &[13])),
        _ => Reply::message(404, "404 Not found"),
    })
    .await;
    let gl = gitlab(&server);
    gl.assign(
        "acme/app",
        7,
        &[UserRef::new("11"), UserRef::new("12")],
        &[UserRef::new("13")],
    )
    .await
    .expect("assign");
    let puts = server.seen_at("PUT", MR);
    assert_eq!(puts.len(), 1);
    assert_eq!(
        puts[0].body,
        json!({"assignee_ids": [11, 12], "reviewer_ids": [13]})
    );

    // Already assigned: nothing to change, no PUT.
    gl.assign("acme/app", 7, &[UserRef::new("11")], &[])
        .await
        .expect("no-op");
    assert_eq!(server.seen_at("PUT", MR).len(), 1);
    // Nothing asked: no request at all.
    let before = server.seen().len();
    gl.assign("acme/app", 7, &[], &[]).await.expect("empty");
    // A login is not a GitLab id.
    let e = gl
        .assign("acme/app", 7, &[UserRef::new("alice")], &[])
        .await
        .expect_err("login");
    assert!(matches!(e, ForgeError::InvalidArgument(_)));
    assert_eq!(server.seen().len(), before);
}

#[tokio::test]
async fn webhook_status_reads_the_hooks() {
    let hooks = Arc::new(Mutex::new(json!([])));
    let h2 = hooks.clone();
    let server = Server::start(Kind::GitLab, move |s| match s.path.as_str() {
        "/api/v4/projects/acme%2Fapp/hooks" => Reply::ok(h2.lock().expect("hooks").clone()),
        "/api/v4/projects/acme%2Fsecret/hooks" => Reply::message(403, "403 Forbidden"),
        _ => Reply::message(404, "404 Project Not Found"),
    })
    .await;
    let gl = gitlab(&server);
    let url = "https://ai.example.com/api/webhooks/gitlab";
    let status = |v: Value| {
        *hooks.lock().expect("hooks") = v;
        let gl = gl.clone();
        async move { gl.webhook_status("acme/app", url).await.expect("status") }
    };
    assert_eq!(status(json!([])).await, WebhookStatus::NotConfigured);
    assert_eq!(
        status(json!([{"id": 1, "url": "https://other/hook", "merge_requests_events": true}]))
            .await,
        WebhookStatus::NotConfigured
    );
    assert_eq!(
        status(json!([{"id": 1, "url": format!("{url}/"), "merge_requests_events": true, "alert_status": "executable"}])).await,
        WebhookStatus::Active
    );
    assert_eq!(
        status(json!([{"id": 1, "url": url, "merge_requests_events": false}])).await,
        WebhookStatus::Inactive
    );
    assert_eq!(
        status(json!([{"id": 1, "url": url, "merge_requests_events": true, "alert_status": "disabled"}])).await,
        WebhookStatus::Error
    );
    assert_eq!(
        gl.webhook_status("acme/secret", url)
            .await
            .expect("unknown"),
        WebhookStatus::Unknown
    );
    let e = gl.webhook_status("acme/none", url).await.expect_err("404");
    assert!(matches!(e, ForgeError::NotFound { .. }));
}

#[tokio::test]
async fn rate_limits_are_waited_out_as_asked() {
    let calls = Counter::default();
    let server = Server::start(Kind::GitLab, move |_| {
        if calls.bump("mr") == 1 {
            Reply::message(429, "Retry later").header("retry-after", "1")
        } else {
            Reply::ok(mr_json(&[], &[]))
        }
    })
    .await;
    let started = Instant::now();
    let c = gitlab(&server)
        .get_change("acme/app", 7)
        .await
        .expect("after the wait");
    assert_eq!(c.number, 7);
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(server.seen().len(), 2);
}

#[tokio::test]
async fn a_rate_limit_longer_than_the_cap_is_returned_at_once() {
    let server = Server::start(Kind::GitLab, |_| {
        Reply::message(429, "Retry later").header("retry-after", "3600")
    })
    .await;
    let e = gitlab(&server)
        .get_change("acme/app", 7)
        .await
        .expect_err("too long");
    assert!(
        matches!(e, ForgeError::RateLimited { retry_after: Some(d), .. } if d == Duration::from_secs(3600)),
        "{e}"
    );
    assert!(e.is_retryable());
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test]
async fn server_errors_are_retried_then_reported() {
    let calls = Counter::default();
    let server = Server::start(Kind::GitLab, move |s| {
        if s.path.ends_with("/7") && calls.bump("7") == 1 {
            return Reply::message(500, "500 Internal Server Error");
        }
        if s.path.ends_with("/7") {
            Reply::ok(mr_json(&[], &[]))
        } else {
            Reply::message(502, "bad gateway")
        }
    })
    .await;
    let gl = gitlab(&server);
    gl.get_change("acme/app", 7).await.expect("second try");
    assert_eq!(server.seen().len(), 2);
    let e = gl.get_change("acme/app", 8).await.expect_err("always 502");
    assert!(matches!(e, ForgeError::Server { status: 502, .. }), "{e}");
    assert_eq!(server.seen().len(), 2 + 4, "one try and three retries");
}

#[tokio::test]
async fn a_create_that_timed_out_is_not_sent_again() {
    let server = Server::start(Kind::GitLab, |_| {
        Reply::json(201, json!({"id": 1})).delayed(Duration::from_millis(800))
    })
    .await;
    let http = ai_review_forge::http_client(Duration::from_millis(200)).expect("client");
    let gl = GitLab::new(&server.base, SecretString::new(TOKEN), http)
        .expect("gl")
        .with_retry_policy(fast_retry());
    let e = gl
        .upsert_summary("acme/app", 7, None, "body")
        .await
        .expect_err("timeout");
    assert!(matches!(e, ForgeError::Transport(_)), "{e}");
    assert_eq!(
        server.seen().len(),
        1,
        "a POST that may have landed is not repeated"
    );
    // Reads are safe to repeat.
    let e = gl.get_change("acme/app", 7).await.expect_err("timeout");
    assert!(matches!(e, ForgeError::Transport(_)));
    assert_eq!(server.seen().len(), 1 + 4);
}

#[tokio::test]
async fn an_unreachable_forge_is_a_transport_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let gl = GitLab::new(
        &format!("http://{addr}"),
        SecretString::new(TOKEN),
        client(),
    )
    .expect("gl")
    .with_retry_policy(fast_retry());
    let e = gl
        .upsert_summary("acme/app", 7, None, "body")
        .await
        .expect_err("refused");
    assert!(matches!(e, ForgeError::Transport(_)), "{e}");
    assert!(e.is_retryable());
}

#[tokio::test]
async fn clone_credentials_use_oauth2() {
    let gl = GitLab::new(
        "https://gitlab.example.com",
        SecretString::new(TOKEN),
        client(),
    )
    .expect("gl");
    let c = gl.clone_credentials();
    assert_eq!(c.username, "oauth2");
    assert_eq!(c.password.expose(), TOKEN);
    assert!(!format!("{c:?}").contains(TOKEN));
}

/// A server that sends the status line and headers, half a body, then
/// hangs up; counts the requests it got.
async fn truncating_server() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c2 = count.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            c2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf).await;
                let _ = sock
                    .write_all(b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"id\":")
                    .await;
                let _ = sock.shutdown().await;
            });
        }
    });
    (format!("http://{addr}"), count)
}

#[tokio::test]
async fn a_create_whose_answer_broke_off_is_not_sent_again() {
    let (base, count) = truncating_server().await;
    let gl = GitLab::new(&base, SecretString::new(TOKEN), client())
        .expect("gl")
        .with_retry_policy(fast_retry());
    let e = gl
        .upsert_summary("acme/app", 7, None, "body")
        .await
        .expect_err("broken body");
    assert!(matches!(e, ForgeError::Transport(_)), "{e}");
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1);
    let e = gl.get_change("acme/app", 7).await.expect_err("broken body");
    assert!(matches!(e, ForgeError::Transport(_)), "{e}");
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1 + 4);
}
