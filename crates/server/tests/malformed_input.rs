//! Malformed input never gives a 500: property tests throw random headers,
//! query strings and JSON bodies at every parser of the API (in process,
//! through the real router and a real SQLite store) and require a 4xx
//! answer in the envelope, or a success.

use ai_review_domain::{ApiKeySecret, Email, Role, Timestamp, UserId};
use ai_review_server::app::{AppState, router};
use ai_review_server::clock::SystemClock;
use ai_review_server::config::Settings;
use ai_review_store::{NewApiKey, NewUser, RunnerRegistration, Store};
use ai_review_store_sqlite::SqliteStore;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use proptest::prelude::*;
use std::sync::Arc;
use tower::ServiceExt;

struct Fixture {
    rt: tokio::runtime::Runtime,
    app: axum::Router,
    key: String,
    task: String,
    _shutdown: tokio::sync::watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("f.db").display());
    let (app, key, task, shutdown) = rt.block_on(async {
        let store = SqliteStore::connect(&url).await.expect("sqlite");
        let now = Timestamp::now();
        let user = store
            .create_user(NewUser {
                id: UserId::generate(),
                email: Email::parse("fuzz@example.com").expect("email"),
                password_hash: "x".into(),
                role: Role::Admin,
                permissions: vec![],
                now,
            })
            .await
            .expect("user");
        let secret = ApiKeySecret::generate();
        store
            .create_api_key(NewApiKey {
                id: ai_review_domain::ApiKeyId::generate(),
                user_id: user.id.clone(),
                name: "fuzz".into(),
                prefix: secret.display_prefix(),
                digest: secret.digest(),
                now,
                expires_at: None,
            })
            .await
            .expect("key");
        store
            .register_runner(RunnerRegistration {
                id: ai_review_domain::RunnerId::parse("r1").expect("id"),
                name: "r1".into(),
                version: "1".into(),
                max_concurrency: 1,
                tags: Default::default(),
                owner: user.id.clone(),
                now,
            })
            .await
            .expect("runner");
        let (_, task) = store
            .enqueue_review(ai_review_store::NewReview {
                id: ai_review_domain::ReviewId::generate(),
                task_id: ai_review_domain::TaskId::generate(),
                repo_url: ai_review_domain::RepoUrl::parse("https://h/r.git").expect("url"),
                base_sha: ai_review_domain::CommitSha::parse(&"a".repeat(40)).expect("sha"),
                head_sha: ai_review_domain::CommitSha::parse(&"b".repeat(40)).expect("sha"),
                branch: None,
                title: None,
                created_by: user.id.clone(),
                required_tags: Default::default(),
                max_attempts: 3,
                expires_at: now.plus_millis(3_600_000),
                change: None,
                spec: serde_json::json!({}),
                now,
            })
            .await
            .expect("enqueue");
        let (tx, rx) = tokio::sync::watch::channel(false);
        let settings = Settings {
            rate_limit: None,
            max_poll_wait: std::time::Duration::ZERO,
            ..Settings::default()
        };
        let state = AppState::new(settings, Arc::new(store), Arc::new(SystemClock), rx);
        (
            router(state),
            secret.expose().to_owned(),
            task.id.to_string(),
            tx,
        )
    });
    Fixture {
        rt,
        app,
        key,
        task,
        _shutdown: shutdown,
        _dir: dir,
    }
}

fn check(f: &Fixture, req: Request<Body>) -> Result<(), TestCaseError> {
    let resp =
        f.rt.block_on(f.app.clone().oneshot(req))
            .expect("infallible");
    let status = resp.status();
    let bytes =
        f.rt.block_on(axum::body::to_bytes(resp.into_body(), 1 << 20))
            .expect("body");
    prop_assert!(
        status != StatusCode::INTERNAL_SERVER_ERROR,
        "500 for input: {}",
        String::from_utf8_lossy(&bytes)
    );
    prop_assert!(status.as_u16() < 500, "{status}");
    let v: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| TestCaseError::fail(format!("not JSON ({status}): {e}")))?;
    prop_assert!(
        v.get("error").is_some() && v.get("data").is_some(),
        "not an envelope: {v}"
    );
    if !status.is_success() {
        prop_assert_eq!(
            v["error"]["status"].as_u64(),
            Some(u64::from(status.as_u16()))
        );
    }
    Ok(())
}

fn header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,80}",
        "[0-9]{1,12}",
        "-?[0-9]{1,25}",
        "[a-z, ]{0,40}",
        Just(String::new()),
    ]
}

/// JSON values shaped like our bodies, with wrong types and odd values.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(|f| serde_json::json!(f)),
        "[ -~]{0,50}".prop_map(serde_json::Value::from),
        prop_oneof![
            Just("online"),
            Just("busy"),
            Just("cloning"),
            Just("succeeded"),
            Just("failed"),
            Just("r1"),
            Just("https://h/r.git")
        ]
        .prop_map(serde_json::Value::from),
        Just(serde_json::Value::from("a".repeat(40))),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        let keys = prop_oneof![
            Just("runnerId"),
            Just("attempt"),
            Just("phase"),
            Just("status"),
            Just("activeJobs"),
            Just("lines"),
            Just("text"),
            Just("stream"),
            Just("at"),
            Just("outcome"),
            Just("reason"),
            Just("retryable"),
            Just("output"),
            Just("repoUrl"),
            Just("baseSha"),
            Just("headSha"),
            Just("tags"),
            Just("name"),
            Just("expiresInDays"),
            Just("x"),
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map(keys.prop_map(str::to_owned), inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn registration_headers_never_cause_a_500(
        id in header_value(), name in header_value(), version in header_value(),
        conc in header_value(), tags in header_value(), drop_id in any::<bool>(),
    ) {
        let f = FIXTURE.with(|f| f.clone());
        let mut b = Request::post("/api/runners/register").header("authorization", format!("Bearer {}", f.key));
        if !drop_id { b = b.header("x-runner-id", id); }
        let req = b
            .header("x-runner-name", name)
            .header("x-runner-version", version)
            .header("x-runner-max-concurrency", conc)
            .header("x-runner-tags", tags)
            .body(Body::empty())
            .expect("request");
        check(&f, req)?;
    }

    #[test]
    fn credentials_never_cause_a_500(auth in "[ -~]{0,120}", which in 0u8..2) {
        let f = FIXTURE.with(|f| f.clone());
        let name = if which == 0 { "authorization" } else { "x-api-key" };
        let req = Request::get("/api/me").header(name, auth).body(Body::empty()).expect("request");
        check(&f, req)?;
    }

    #[test]
    fn query_strings_never_cause_a_500(q in "[a-zA-Z0-9=&%_.-]{0,80}", path in 0usize..3) {
        let f = FIXTURE.with(|f| f.clone());
        let base = ["/api/runners/tasks/pending", "/api/reviews", "/api/reviews/00000000-0000-0000-0000-000000000000/logs"][path];
        let req = Request::get(format!("{base}?{q}"))
            .header("authorization", format!("Bearer {}", f.key))
            .body(Body::empty())
            .expect("request");
        check(&f, req)?;
    }

    #[test]
    fn json_bodies_never_cause_a_500(body in json_value(), endpoint in 0usize..7, raw in prop::option::weighted(0.2, "[ -~]{0,60}")) {
        let f = FIXTURE.with(|f| f.clone());
        let path = [
            "/api/runners/r1/heartbeat".to_owned(),
            format!("/api/runners/tasks/{}/status", f.task),
            format!("/api/runners/tasks/{}/logs", f.task),
            format!("/api/runners/tasks/{}/result", f.task),
            "/api/reviews".to_owned(),
            "/api/api-keys".to_owned(),
            "/api/runners/tasks/not-a-task/result".to_owned(),
        ][endpoint].clone();
        let text = raw.unwrap_or_else(|| body.to_string());
        let req = Request::post(path)
            .header("authorization", format!("Bearer {}", f.key))
            .header("content-type", "application/json")
            .body(Body::from(text))
            .expect("request");
        check(&f, req)?;
    }
}

thread_local! {
    static FIXTURE: Arc<Fixture> = Arc::new(fixture());
}
