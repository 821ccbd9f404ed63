//! A scriptable HTTP server standing in for a forge: it checks the
//! authentication headers as the real forge would (401 otherwise), records
//! every request, and answers through a per-test handler that implements
//! only the routes that test needs.

#![allow(dead_code)]

use axum::body::{Body, to_bytes};
use axum::http::{HeaderMap, Request, StatusCode};
use axum::response::Response;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The token the server accepts.
pub const TOKEN: &str = "tok-good-123";

/// Which forge's authentication the server demands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `PRIVATE-TOKEN`.
    GitLab,
    /// `Authorization: Bearer`, `Accept`, `X-GitHub-Api-Version`, `User-Agent`.
    GitHub,
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Raw path, percent-encoding kept.
    pub path: String,
    pub query: HashMap<String, String>,
    pub headers: HashMap<String, String>,
    pub body: Value,
}

impl Seen {
    pub fn route(&self) -> (&str, &str) {
        (self.method.as_str(), self.path.as_str())
    }
}

/// What the handler answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub delay: Option<Duration>,
}

impl Reply {
    pub fn json(status: u16, v: Value) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: v.to_string(),
            delay: None,
        }
    }

    pub fn ok(v: Value) -> Self {
        Self::json(200, v)
    }

    pub fn message(status: u16, msg: &str) -> Self {
        Self::json(status, serde_json::json!({ "message": msg }))
    }

    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }

    pub fn delayed(mut self, d: Duration) -> Self {
        self.delay = Some(d);
        self
    }
}

type Handler = Arc<dyn Fn(&Seen) -> Reply + Send + Sync>;

/// A running server.
pub struct Server {
    pub base: String,
    log: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    /// Starts on 127.0.0.1:0.
    pub async fn start(
        kind: Kind,
        handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let handler: Handler = Arc::new(handler);
        let log = Arc::new(Mutex::new(Vec::new()));
        let log2 = log.clone();
        let app = axum::Router::new().fallback(move |req: Request<Body>| {
            let handler = handler.clone();
            let log = log2.clone();
            async move { serve(kind, req, handler, log).await }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            base: format!("http://{addr}"),
            log,
        }
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.log.lock().expect("log").clone()
    }

    /// Requests with this method whose path ends with `suffix`.
    pub fn seen_at(&self, method: &str, suffix: &str) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.method == method && s.path.ends_with(suffix))
            .collect()
    }
}

fn auth_ok(kind: Kind, h: &HeaderMap) -> bool {
    let get = |k: &str| h.get(k).and_then(|v| v.to_str().ok());
    match kind {
        Kind::GitLab => get("private-token") == Some(TOKEN),
        Kind::GitHub => {
            get("authorization") == Some(&format!("Bearer {TOKEN}"))
                && get("accept") == Some("application/vnd.github+json")
                && get("x-github-api-version") == Some("2022-11-28")
                && get("user-agent").is_some_and(|u| u.starts_with("ai-review/"))
        }
    }
}

async fn serve(
    kind: Kind,
    req: Request<Body>,
    handler: Handler,
    log: Arc<Mutex<Vec<Seen>>>,
) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = to_bytes(body, 1 << 20).await.unwrap_or_default();
    let query = parts
        .uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let seen = Seen {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query,
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    };
    log.lock().expect("log").push(seen.clone());
    let reply = if auth_ok(kind, &parts.headers) {
        handler(&seen)
    } else {
        let msg = match kind {
            Kind::GitLab => "401 Unauthorized",
            Kind::GitHub => "Bad credentials",
        };
        Reply::message(401, msg)
    };
    if let Some(d) = reply.delay {
        tokio::time::sleep(d).await;
    }
    let mut resp = Response::builder().status(StatusCode::from_u16(reply.status).expect("status"));
    for (k, v) in &reply.headers {
        resp = resp.header(k, v);
    }
    resp.body(Body::from(reply.body)).expect("response")
}

/// A retry policy fast enough for tests.
pub fn fast_retry() -> ai_review_forge::RetryPolicy {
    ai_review_forge::RetryPolicy {
        max_retries: 3,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_secs(5),
    }
}

/// An HTTP client with a short timeout.
pub fn client() -> reqwest::Client {
    ai_review_forge::http_client(Duration::from_secs(5)).expect("client")
}

/// A counter shared with a handler.
#[derive(Clone, Default)]
pub struct Counter(Arc<Mutex<HashMap<String, usize>>>);

impl Counter {
    /// Increments `key` and returns the new count (1 for the first call).
    pub fn bump(&self, key: &str) -> usize {
        let mut m = self.0.lock().expect("counter");
        let n = m.entry(key.to_owned()).or_default();
        *n += 1;
        *n
    }
}

pub const BASE: &str = "1111111111111111111111111111111111111111";
pub const START: &str = "2222222222222222222222222222222222222222";
pub const HEAD: &str = "3333333333333333333333333333333333333333";
