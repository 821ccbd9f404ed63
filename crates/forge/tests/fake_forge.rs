//! Both implementations end to end against `ai-review-fake-forge`, which
//! serves real git repositories and validates comment positions against
//! the real diff, as the forges do.

use ai_review_domain::SecretString;
use ai_review_fake_forge::{Failure, FakeForge, Forge as Side, Repo};
use ai_review_forge::{
    CommitState, Forge, ForgeError, GitHub, GitLab, InlineComment, RetryPolicy, UserRef,
    WebhookStatus,
};
use std::time::{Duration, Instant};

const GL_TOKEN: &str = "glpat-e2e";
const GH_TOKEN: &str = "ghs_e2e";

const MAIN: &str = "l1\nl2\nl3\nl4\nl5\nl6\nl7\nl8\n";
/// Two lines inserted after l2: new lines 3 and 4 are added, new line 5
/// is the context line l3 (old line 3).
const FEATURE: &str = "l1\nl2\nadded a\nadded b\nl3\nl4\nl5\nl6\nl7\nl8\n";

fn retry() -> RetryPolicy {
    RetryPolicy {
        max_retries: 3,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_secs(5),
    }
}

fn http() -> reqwest::Client {
    ai_review_forge::http_client(Duration::from_secs(10)).expect("client")
}

fn comment(line: u32, end_line: u32, end_old_line: Option<u32>, fp: &str) -> InlineComment {
    InlineComment {
        path: "src/lib.rs".into(),
        old_path: None,
        line,
        end_line,
        end_old_line,
        body: format!("finding {fp}"),
        suggestion: None,
        fingerprint: fp.into(),
    }
}

fn change_repo(fake: &FakeForge, side: Side, path: &str) -> Repo {
    let repo = fake.create_repo(side, path, &[("src/lib.rs", MAIN)]);
    fake.push_commit(
        &repo,
        "feature",
        &[("src/lib.rs", Some(FEATURE))],
        "Add a and b",
    );
    repo
}

#[tokio::test]
async fn gitlab_end_to_end() {
    let fake = FakeForge::start(GL_TOKEN, GH_TOKEN).await;
    let repo = change_repo(&fake, Side::GitLab, "acme/app");
    let iid = fake.open_merge_request(&repo, "feature", "main", "Add a and b", "alice", false);
    let gl = GitLab::new(&fake.gitlab_url(), SecretString::new(GL_TOKEN), http())
        .expect("gitlab")
        .with_retry_policy(retry());

    let projects = gl.list_projects().await.expect("projects");
    let p = projects
        .iter()
        .find(|p| p.path == "acme/app")
        .expect("listed");
    assert_eq!(p.default_branch.as_deref(), Some("main"));
    assert_eq!(p.clone_url.as_str(), fake.clone_url(&repo));

    let change = gl.get_change("acme/app", iid).await.expect("change");
    let main_tip = fake.branch_head(&repo, "main").expect("main");
    let head = fake.branch_head(&repo, "feature").expect("feature");
    assert_eq!(change.base_sha.as_str(), main_tip);
    assert_eq!(change.start_sha.as_str(), main_tip);
    assert_eq!(change.head_sha.as_str(), head);
    assert_eq!(change.author.username, "alice");
    // The numeric id works as well as the path.
    let by_id = gl.get_change(&p.external_id, iid).await.expect("by id");
    assert_eq!(by_id.head_sha, change.head_sha);

    let id = gl
        .upsert_summary("acme/app", iid, None, "summary v1")
        .await
        .expect("create");
    let id2 = gl
        .upsert_summary("acme/app", iid, Some(&id), "summary v2")
        .await
        .expect("update");
    assert_eq!(id, id2);
    let notes: Vec<_> = fake
        .notes()
        .into_iter()
        .filter(|n| n.discussion_id.is_none())
        .collect();
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].body, "summary v2");

    let results = gl
        .post_inline_comments(
            "acme/app",
            &change,
            &[
                comment(3, 4, None, "added"),
                comment(7, 7, None, "wrong"),
                comment(5, 5, Some(3), "context"),
            ],
        )
        .await
        .expect("comments");
    assert!(results[0].is_ok(), "{:?}", results[0]);
    assert!(
        matches!(&results[1], Err(e) if matches!(e.error, ForgeError::Unprocessable { status: 400, .. })),
        "{:?}",
        results[1]
    );
    assert!(results[2].is_ok(), "{:?}", results[2]);
    assert_eq!(fake.discussions().len(), 2);
    assert_eq!(fake.validation_failures().len(), 1);

    let bob = fake.user_id("bob").to_string();
    gl.assign(
        "acme/app",
        iid,
        &[gl.user_ref(&change.author)],
        &[UserRef::new(bob.clone())],
    )
    .await
    .expect("assign");
    let after = gl.get_change("acme/app", iid).await.expect("change");
    assert_eq!(
        after.assignee_ids,
        vec![UserRef::new(change.author.id.clone())]
    );
    assert_eq!(after.reviewer_ids, vec![UserRef::new(bob)]);

    let hook = "http://ai.example/api/webhooks/gitlab";
    assert_eq!(
        gl.webhook_status("acme/app", hook).await.expect("hooks"),
        WebhookStatus::NotConfigured
    );
    fake.add_hook(&repo, hook, &["merge_requests_events", "note_events"]);
    assert_eq!(
        gl.webhook_status("acme/app", hook).await.expect("hooks"),
        WebhookStatus::Active
    );

    let missing = gl.get_change("acme/app", 999).await.expect_err("404");
    assert!(matches!(missing, ForgeError::NotFound { .. }));

    let mr_route = "GET /gitlab/api/v4/projects/*/merge_requests/*";
    fake.fail(mr_route, Failure::RetryAfter(1));
    let started = Instant::now();
    gl.get_change("acme/app", iid).await.expect("after 429");
    assert!(started.elapsed() >= Duration::from_secs(1));
    fake.fail(mr_route, Failure::Status(500));
    gl.get_change("acme/app", iid).await.expect("after 500");

    let wrong =
        GitLab::new(&fake.gitlab_url(), SecretString::new("glpat-wrong"), http()).expect("gitlab");
    let e = wrong.list_projects().await.expect_err("401");
    assert!(matches!(e, ForgeError::Unauthorized { .. }), "{e}");
}

#[tokio::test]
async fn github_end_to_end() {
    let fake = FakeForge::start(GL_TOKEN, GH_TOKEN).await;
    let repo = change_repo(&fake, Side::GitHub, "acme/app");
    let n = fake.open_pull_request(&repo, "feature", "main", "Add a and b", "alice", false);
    let gh = GitHub::new(&fake.github_api_url(), SecretString::new(GH_TOKEN), http())
        .expect("github")
        .with_retry_policy(retry());

    let projects = gh.list_projects().await.expect("repos");
    let p = projects
        .iter()
        .find(|p| p.path == "acme/app")
        .expect("listed");
    assert_eq!(p.clone_url.as_str(), fake.clone_url(&repo));

    let change = gh.get_change("acme/app", n).await.expect("pr");
    assert_eq!(
        change.head_sha.as_str(),
        fake.branch_head(&repo, "feature").expect("head")
    );
    assert_eq!(change.start_sha, change.base_sha);
    assert_eq!(gh.user_ref(&change.author), UserRef::new("alice"));

    let id = gh
        .upsert_summary("acme/app", n, None, "summary v1")
        .await
        .expect("create");
    gh.upsert_summary("acme/app", n, Some(&id), "summary v2")
        .await
        .expect("update");
    let comments = fake.issue_comments();
    assert_eq!(comments.len(), 1);
    assert_eq!(comments[0].body, "summary v2");

    let results = gh
        .post_inline_comments(
            "acme/app",
            &change,
            &[comment(3, 4, None, "added"), comment(9, 9, None, "wrong")],
        )
        .await
        .expect("review");
    assert!(results[0].is_ok(), "{:?}", results[0]);
    assert!(
        matches!(&results[1], Err(e) if matches!(e.error, ForgeError::Unprocessable { status: 422, .. })),
        "{:?}",
        results[1]
    );
    let reviews = fake.reviews();
    assert_eq!(
        reviews.len(),
        1,
        "only the placeable comment's review exists"
    );
    let rc = &reviews[0].comments[0];
    assert_eq!(
        (rc.line, rc.start_line, rc.side.as_str()),
        (4, Some(3), "RIGHT")
    );
    assert_eq!(reviews[0].commit_id, change.head_sha.as_str());

    gh.set_status(
        "acme/app",
        &change.head_sha,
        CommitState::Success,
        &"x".repeat(300),
        Some("http://ai.example/reviews/1"),
    )
    .await
    .expect("status");
    let statuses = fake.statuses();
    assert_eq!(statuses.len(), 1);
    assert_eq!(
        (statuses[0].context.as_str(), statuses[0].state.as_str()),
        ("ai-review", "success")
    );

    let hook = "http://ai.example/api/webhooks/github";
    fake.add_hook(&repo, hook, &["pull_request", "issue_comment"]);
    assert_eq!(
        gh.webhook_status("acme/app", hook).await.expect("hooks"),
        WebhookStatus::Active
    );

    let pr_route = "GET /github/api/v3/repos/*/*/pulls/*";
    fake.fail(
        pr_route,
        Failure::RateLimitReset {
            status: 403,
            reset_in_secs: 1,
        },
    );
    gh.get_change("acme/app", n).await.expect("after the reset");
    fake.fail(pr_route, Failure::Status(502));
    gh.get_change("acme/app", n).await.expect("after 502");
    assert!(matches!(
        gh.get_change("acme/app", 999).await,
        Err(ForgeError::NotFound { .. })
    ));

    let wrong = GitHub::new(
        &fake.github_api_url(),
        SecretString::new("ghs_wrong"),
        http(),
    )
    .expect("github");
    let e = wrong.get_change("acme/app", n).await.expect_err("401");
    assert!(matches!(e, ForgeError::Unauthorized { .. }), "{e}");
}

#[tokio::test]
async fn both_list_every_page() {
    let fake = FakeForge::start(GL_TOKEN, GH_TOKEN).await;
    for i in 0..201 {
        fake.create_repo(Side::GitLab, &format!("group/sub/p{i}"), &[("a", "a\n")]);
        fake.create_repo(Side::GitHub, &format!("acme/r{i}"), &[("a", "a\n")]);
    }
    let gl = GitLab::new(&fake.gitlab_url(), SecretString::new(GL_TOKEN), http()).expect("gl");
    let gh = GitHub::new(&fake.github_api_url(), SecretString::new(GH_TOKEN), http()).expect("gh");
    let mut gl_paths: Vec<String> = gl
        .list_projects()
        .await
        .expect("gitlab")
        .into_iter()
        .map(|p| p.path)
        .collect();
    let mut gh_paths: Vec<String> = gh
        .list_projects()
        .await
        .expect("github")
        .into_iter()
        .map(|p| p.path)
        .collect();
    gl_paths.sort();
    gl_paths.dedup();
    gh_paths.sort();
    gh_paths.dedup();
    assert_eq!(gl_paths.len(), 201);
    assert_eq!(gh_paths.len(), 201);
    assert!(gl_paths.contains(&"group/sub/p200".to_owned()));
    let pages = |prefix: &str| {
        fake.requests()
            .iter()
            .filter(|r| r.path.starts_with(prefix) && !r.git)
            .count()
    };
    assert_eq!(pages("/gitlab/api/v4/projects"), 3);
    assert_eq!(pages("/github/api/v3/user/repos"), 3);
}
