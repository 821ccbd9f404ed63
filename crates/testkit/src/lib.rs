//! The typed test harness: [`TestApp`] starts a real server on port 0 over
//! a real database (SQLite file or a fresh PostgreSQL database), on a
//! [`ManualClock`] so tests move time instead of sleeping, with named
//! request helpers and typed principals.

pub mod browser;
pub mod docker;
pub mod git;
pub mod prom;
pub mod push;
pub mod smtp;
pub mod web;

use ai_review_domain::{
    ApiKeyId, ApiKeySecret, Email, Permission, Role, RunnerId, Timestamp, UserId,
};
use ai_review_protocol::api::ReviewView;
use ai_review_protocol::client::{Registration, RunnerClient};
use ai_review_protocol::runner::TaskAssignment;
use ai_review_server::clock::ManualClock;
use ai_review_server::config::Settings;
use ai_review_server::queue::{ReaperPass, reap_once};
use ai_review_server::{RunningServer, open_store};
use ai_review_store::{NewApiKey, NewUser, User};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// Which store backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file in a temporary directory.
    Sqlite,
    /// A fresh database on the test PostgreSQL server.
    Postgres,
}

/// Who makes a request.
#[derive(Debug, Clone)]
pub enum Principal {
    /// No credentials.
    Anonymous,
    /// An API key sent as `Authorization: Bearer`.
    Bearer(String),
    /// An API key sent as `x-api-key`.
    XApiKey(String),
    /// Arbitrary header (malformed credentials).
    RawHeader(&'static str, String),
}

/// A user created for a test, with one API key.
#[derive(Debug, Clone)]
pub struct TestUser {
    /// The stored user.
    pub user: User,
    /// Their key in clear.
    pub key: String,
    /// The key's id.
    pub key_id: ApiKeyId,
}

impl TestUser {
    /// The user's key as a bearer principal.
    pub fn bearer(&self) -> Principal {
        Principal::Bearer(self.key.clone())
    }
}

/// An HTTP answer: status and parsed envelope.
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Headers.
    pub headers: reqwest::header::HeaderMap,
    /// The JSON body (`Value::Null` if not JSON).
    pub body: Value,
}

impl Answer {
    /// `body.data`.
    pub fn data(&self) -> &Value {
        &self.body["data"]
    }

    /// `body.error.title`.
    pub fn error_title(&self) -> &str {
        self.body["error"]["title"].as_str().unwrap_or("")
    }

    /// `body.error.detail`.
    pub fn error_detail(&self) -> &str {
        self.body["error"]["detail"].as_str().unwrap_or("")
    }

    /// Asserts the status, showing the body on failure.
    #[track_caller]
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(self.status, status, "unexpected answer: {:#}", self.body);
        self
    }

    /// Asserts this is a well-formed error envelope with `status`.
    #[track_caller]
    pub fn expect_error(self, status: u16, title: &str) -> Self {
        let s = self.expect(status);
        assert!(s.body["data"].is_null(), "error with data: {:#}", s.body);
        assert_eq!(s.error_title(), title, "{:#}", s.body);
        assert_eq!(s.body["error"]["status"], status, "{:#}", s.body);
        s
    }
}

/// A running server over a real database.
pub struct TestApp {
    /// The server.
    pub server: RunningServer,
    /// Its clock.
    pub clock: Arc<ManualClock>,
    /// Backend in use.
    pub backend: Backend,
    /// An admin created at start.
    pub admin: TestUser,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl TestApp {
    /// Starts a server with test settings (no rate limit, no background
    /// reaper: call [`TestApp::reap`]).
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, |_| {}).await
    }

    /// Starts a server after `tweak` adjusted the settings.
    pub async fn spawn_with(backend: Backend, tweak: impl FnOnce(&mut Settings)) -> Self {
        ai_review_protocol::client::ensure_crypto_provider();
        let dir = tempfile::tempdir().expect("tempdir");
        let url = match backend {
            Backend::Sqlite => format!("sqlite://{}", dir.path().join("test.db").display()),
            Backend::Postgres => ai_review_pg_testing::fresh_database_url().await,
        };
        let store = open_store(&url).await.expect("open store");
        let mut settings = Settings {
            rate_limit: None,
            lease: Duration::from_secs(30),
            heartbeat_timeout: Duration::from_secs(60),
            ..Settings::default()
        };
        tweak(&mut settings);
        let clock = Arc::new(ManualClock::new(Timestamp::now()));
        let server = RunningServer::start(settings, store, clock.clone(), false)
            .await
            .expect("start server");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("http client");
        let mut app = Self {
            server,
            clock,
            backend,
            admin: placeholder_user(),
            http,
            _dir: dir,
        };
        app.admin = app.user("admin@example.com", Role::Admin, &[]).await;
        app
    }

    /// The server's base URL.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Creates a user with one API key, directly in the store.
    pub async fn user(&self, email: &str, role: Role, permissions: &[Permission]) -> TestUser {
        let store = &self.server.state.store;
        let now = self.clock_now();
        let user = store
            .create_user(NewUser {
                id: UserId::generate(),
                email: Email::parse(email).expect("email"),
                password_hash: ai_review_server::passwords::hash_password("password123")
                    .expect("hash"),
                role,
                permissions: permissions.to_vec(),
                now,
            })
            .await
            .expect("create user");
        let secret = ApiKeySecret::generate();
        let key = store
            .create_api_key(NewApiKey {
                id: ApiKeyId::generate(),
                user_id: user.id.clone(),
                name: "test".into(),
                prefix: secret.display_prefix(),
                digest: secret.digest(),
                now,
                expires_at: None,
            })
            .await
            .expect("create key");
        TestUser {
            user,
            key: secret.expose().to_owned(),
            key_id: key.id,
        }
    }

    /// An ordinary user allowed to queue reviews.
    pub async fn reviewer(&self, email: &str) -> TestUser {
        self.user(email, Role::User, &[Permission::ReviewCreate])
            .await
    }

    /// The clock's current time.
    pub fn clock_now(&self) -> Timestamp {
        use ai_review_server::clock::Clock;
        self.clock.now()
    }

    /// Moves the server's clock forward.
    pub fn advance(&self, d: Duration) {
        self.clock
            .advance(i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    }

    /// Runs one reaper pass now.
    pub async fn reap(&self) -> ReaperPass {
        reap_once(&self.server.state).await.expect("reaper pass")
    }

    /// A runner protocol client for `runner_id` with `key`.
    pub fn runner_client(&self, key: &str, runner_id: &str) -> RunnerClient {
        RunnerClient::new(
            &self.url(),
            key,
            RunnerId::parse(runner_id).expect("runner id"),
            Duration::from_secs(10),
        )
        .expect("runner client")
    }

    /// Registers a runner with `tags` and returns its client.
    pub async fn runner(&self, owner: &TestUser, runner_id: &str, tags: &str) -> RunnerClient {
        let c = self.runner_client(&owner.key, runner_id);
        c.register(&Registration {
            name: runner_id.into(),
            version: "test".into(),
            max_concurrency: 4,
            tags: tags.into(),
        })
        .await
        .expect("register runner");
        c
    }

    /// Queues a review as `who` and returns it.
    pub async fn enqueue(&self, who: &TestUser, tags: &[&str]) -> ReviewView {
        let body = serde_json::json!({
            "repoUrl": "https://git.example.com/group/repo.git",
            "baseSha": "a".repeat(40),
            "headSha": "b".repeat(40),
            "branch": "feature",
            "title": "Add a thing",
            "tags": tags,
        });
        let a = self
            .post("/api/reviews", &who.bearer(), &body)
            .await
            .expect(202);
        serde_json::from_value(a.data().clone()).expect("review view")
    }

    /// Queues a review of `base..head` in the repository at `repo_url`.
    pub async fn enqueue_change(
        &self,
        who: &TestUser,
        repo_url: &str,
        base: &str,
        head: &str,
    ) -> ReviewView {
        let body = serde_json::json!({
            "repoUrl": repo_url, "baseSha": base, "headSha": head, "branch": "main", "title": "change",
        });
        let a = self
            .post("/api/reviews", &who.bearer(), &body)
            .await
            .expect(202);
        serde_json::from_value(a.data().clone()).expect("review view")
    }

    /// Queues a review of `base..head` with more request fields merged in
    /// (`aiConfigId`, `templateId`, `excludes`, `tags`, …).
    pub async fn enqueue_change_with(
        &self,
        who: &TestUser,
        repo_url: &str,
        base: &str,
        head: &str,
        extra: &Value,
    ) -> ReviewView {
        let mut body = serde_json::json!({
            "repoUrl": repo_url, "baseSha": base, "headSha": head, "branch": "main", "title": "change",
        });
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        let a = self
            .post("/api/reviews", &who.bearer(), &body)
            .await
            .expect(202);
        serde_json::from_value(a.data().clone()).expect("review view")
    }

    /// Creates an AI config as the admin (`POST /api/ai-configs` with
    /// `body`) and returns its id.
    pub async fn ai_config(&self, body: &Value) -> String {
        let a = self
            .post("/api/ai-configs", &self.admin.bearer(), body)
            .await
            .expect(201);
        a.data()["id"].as_str().expect("config id").to_owned()
    }

    /// Polls `GET /api/reviews/:id` (real time) until `done` holds or
    /// `timeout` passes; returns the last view.
    pub async fn wait_review(
        &self,
        id: &impl std::fmt::Display,
        timeout: Duration,
        done: impl Fn(&ReviewView) -> bool,
    ) -> ReviewView {
        let start = std::time::Instant::now();
        loop {
            let r = self.review(id).await;
            if done(&r) || start.elapsed() > timeout {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Claims one task for `runner` without waiting.
    pub async fn claim(&self, runner: &RunnerClient) -> Option<TaskAssignment> {
        runner
            .poll(1, Duration::ZERO)
            .await
            .expect("poll")
            .into_iter()
            .next()
    }

    /// `GET /api/reviews/:id` as the admin.
    pub async fn review(&self, id: &impl std::fmt::Display) -> ReviewView {
        let a = self
            .get(&format!("/api/reviews/{id}"), &self.admin.bearer())
            .await
            .expect(200);
        serde_json::from_value(a.data().clone()).expect("review view")
    }

    fn with_principal(
        &self,
        rb: reqwest::RequestBuilder,
        who: &Principal,
    ) -> reqwest::RequestBuilder {
        match who {
            Principal::Anonymous => rb,
            Principal::Bearer(k) => rb.bearer_auth(k),
            Principal::XApiKey(k) => rb.header("x-api-key", k),
            Principal::RawHeader(h, v) => rb.header(*h, v),
        }
    }

    /// Sends a request and parses the answer.
    pub async fn send(&self, rb: reqwest::RequestBuilder, who: &Principal) -> Answer {
        let resp = self.with_principal(rb, who).send().await.expect("request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.expect("body");
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
        }
    }

    /// A request builder for `method path`.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.url()))
    }

    /// `GET path`.
    pub async fn get(&self, path: &str, who: &Principal) -> Answer {
        self.send(self.request(reqwest::Method::GET, path), who)
            .await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, who: &Principal, body: &Value) -> Answer {
        self.send(self.request(reqwest::Method::POST, path).json(body), who)
            .await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str, who: &Principal) -> Answer {
        self.send(self.request(reqwest::Method::DELETE, path), who)
            .await
    }

    /// Stops the server.
    pub async fn stop(self) {
        self.server.stop().await.expect("stop server");
    }
}

fn placeholder_user() -> TestUser {
    TestUser {
        user: User {
            id: UserId::generate(),
            email: Email::parse("placeholder@example.com").expect("email"),
            password_hash: String::new(),
            role: Role::User,
            permissions: Vec::new(),
            disabled: false,
            created_at: Timestamp::from_millis(0),
        },
        key: String::new(),
        key_id: ApiKeyId::generate(),
    }
}

/// Runs the listed test functions (`async fn name(backend: Backend)`) once
/// per backend, as `sqlite::name` and `postgres::name`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Backend::Postgres).await;
                }
            )*
        }
    };
}
