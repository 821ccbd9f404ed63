//! A deterministic fake model server for tests.
//!
//! [`FakeLlm::start`] listens on `127.0.0.1:0` and serves, under the base
//! URL [`FakeLlm::base_url`] (`http://127.0.0.1:PORT/v1`, what a task's
//! `baseUrl` would be):
//!
//! * OpenAI Chat Completions: `POST {base}/chat/completions` with
//!   `Authorization: Bearer <key>`;
//! * Anthropic Messages: `POST {base}/messages` with `x-api-key: <key>` and
//!   `anthropic-version`.
//!
//! It is an honest protocol peer: it refuses a wrong key (401), a missing
//! `anthropic-version` (400) and bodies the real APIs refuse (400, in each
//! provider's error shape: a missing model or `max_tokens`, a `system` role
//! inside Anthropic `messages`, unknown Anthropic fields, OpenAI
//! `response_format: json_object` without the word "json" in the
//! messages, …), and answers with each provider's response shape including
//! usage (`prompt_tokens`/`completion_tokens`, `input_tokens`/
//! `output_tokens`).
//!
//! What it answers is scripted: each request takes the next [`Reply`] from a
//! queue ([`FakeLlm::push`]); when the queue is empty a default responder
//! ([`FakeLlm::set_default`], a closure over the parsed [`ChatCall`])
//! decides, by default [`Reply::review`]. Every request is recorded
//! ([`FakeLlm::requests`]) with its headers (keys included: tests assert
//! that the key arrived), body, arrival time and the status it got.
//!
//! ```no_run
//! # async fn demo() {
//! use ai_review_fake_llm::{FakeLlm, Reply};
//! use std::time::Duration;
//! let llm = FakeLlm::start("sk-test").await;
//! llm.push(Reply::rate_limited(Some("1")));
//! llm.push(Reply::content("{\"summary\":\"ok\"}"));
//! // point the code under test at llm.base_url() ...
//! let seen = llm.wait_for_requests(2, Duration::from_secs(5)).await;
//! assert_eq!(seen[0].header("authorization"), Some("Bearer sk-test"));
//! # }
//! ```
//!
//! Token counts are deterministic: a quarter of the characters of the
//! prompt (system and messages) and of the answer, at least 1.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{Notify, watch};

/// A valid review answer, as the executor expects it from the model.
pub const VALID_REVIEW: &str =
    r#"{"summary":"The change looks fine.","assessment":"comment","rating":4,"findings":[]}"#;

/// Which wire protocol a request used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// OpenAI Chat Completions.
    OpenAi,
    /// Anthropic Messages.
    Anthropic,
}

/// One message of a parsed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallMessage {
    /// `system`, `developer`, `user` or `assistant`.
    pub role: String,
    /// Text (text parts joined).
    pub content: String,
}

/// A valid request as the default responder sees it.
#[derive(Debug, Clone)]
pub struct ChatCall {
    /// Protocol.
    pub provider: Provider,
    /// Model asked for.
    pub model: String,
    /// Anthropic's top-level `system` (OpenAI system messages stay in
    /// `messages`).
    pub system: Option<String>,
    /// The conversation.
    pub messages: Vec<CallMessage>,
    /// `max_tokens` (or OpenAI `max_completion_tokens`).
    pub max_tokens: Option<u64>,
    /// OpenAI `response_format.type` was `json_object` or `json_schema`.
    pub json_mode: bool,
    /// Sampling temperature.
    pub temperature: Option<f64>,
    /// The whole body.
    pub body: Value,
}

impl ChatCall {
    /// Prompt tokens as the fake counts them.
    pub fn input_tokens(&self) -> u64 {
        let chars = self.system.as_deref().map_or(0, |s| s.chars().count())
            + self
                .messages
                .iter()
                .map(|m| m.content.chars().count())
                .sum::<usize>();
        tokens(chars)
    }

    /// The last user message's text.
    pub fn last_user(&self) -> Option<&str> {
        self.messages
            .iter()
            .rev()
            .find(|m| m.role == "user")
            .map(|m| m.content.as_str())
    }
}

fn tokens(chars: usize) -> u64 {
    u64::try_from(chars.div_ceil(4)).unwrap_or(u64::MAX).max(1)
}

/// What the fake answers to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A valid provider response carrying `text` (which may be anything,
    /// including schema-violating text). `usage` overrides the computed
    /// `(input, output)` tokens.
    Content {
        /// The generated text.
        text: String,
        /// Tokens to report instead of the computed ones.
        usage: Option<(u64, u64)>,
    },
    /// 429 in the provider's shape, with `Retry-After` when given (seconds
    /// or an HTTP date, sent as is).
    RateLimited {
        /// The `Retry-After` header value.
        retry_after: Option<String>,
    },
    /// A server error (500, 502, 503, 529 …) in the provider's shape.
    ServerError(u16),
    /// Any status with a raw body (sent as `application/json`).
    Raw {
        /// Status.
        status: u16,
        /// Body.
        body: String,
    },
    /// Waits, then answers with the inner reply (used to outlast a
    /// client's timeout or to hold a call while a test looks around).
    Delay(Duration, Box<Reply>),
    /// Holds the call until the test opens the [`Gate`], then answers
    /// with the inner reply.
    Gated(Gate, Box<Reply>),
    /// Never answers (until the fake is dropped).
    Hang,
    /// 200 with a body that is not JSON.
    MalformedJson,
    /// 200 whose body stops halfway: the connection is cut mid-JSON.
    Truncated,
}

impl Reply {
    /// A valid response with `text`.
    pub fn content(text: impl Into<String>) -> Self {
        Reply::Content {
            text: text.into(),
            usage: None,
        }
    }

    /// A valid response with [`VALID_REVIEW`].
    pub fn review() -> Self {
        Reply::content(VALID_REVIEW)
    }

    /// 429 with an optional `Retry-After`.
    pub fn rate_limited(retry_after: Option<&str>) -> Self {
        Reply::RateLimited {
            retry_after: retry_after.map(str::to_owned),
        }
    }

    /// `reply` after `d`.
    pub fn delay(d: Duration, reply: Reply) -> Self {
        Reply::Delay(d, Box::new(reply))
    }

    /// `reply` once `gate` is open.
    pub fn gated(gate: &Gate, reply: Reply) -> Self {
        Reply::Gated(gate.clone(), Box::new(reply))
    }
}

/// Holds [`Reply::Gated`] calls until opened (clones share the state).
#[derive(Debug, Clone)]
pub struct Gate(Arc<watch::Sender<bool>>);

impl Gate {
    /// A closed gate.
    pub fn new() -> Self {
        Self(Arc::new(watch::channel(false).0))
    }

    /// Lets every held call (and later ones) through.
    pub fn open(&self) {
        self.0.send_replace(true);
    }
}

impl Default for Gate {
    fn default() -> Self {
        Self::new()
    }
}

impl PartialEq for Gate {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Gate {}

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// Arrival order, from 1.
    pub seq: u64,
    /// HTTP method.
    pub method: String,
    /// Path (with query, if any).
    pub path: String,
    /// Every header, names lower-case, values as sent.
    pub headers: Vec<(String, String)>,
    /// The body as text (lossy UTF-8).
    pub body: String,
    /// The body as JSON, if it parsed.
    pub json: Option<Value>,
    /// The protocol the path belongs to.
    pub provider: Option<Provider>,
    /// Wall-clock arrival time.
    pub received_at: SystemTime,
    /// Monotonic arrival time (to measure waits between requests).
    pub received: Instant,
    /// Status answered; `None` while the answer is pending or if the client
    /// went away before it.
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

    /// Whether the fake answered it with 200.
    pub fn succeeded(&self) -> bool {
        self.status == Some(200)
    }
}

/// Decides the reply when the queue is empty.
pub type Responder = Arc<dyn Fn(&ChatCall) -> Reply + Send + Sync>;

struct Script {
    queue: VecDeque<Reply>,
    default: Responder,
    requests: Vec<RecordedRequest>,
}

struct Shared {
    key: String,
    script: Mutex<Script>,
    changed: Notify,
    shutdown: watch::Receiver<bool>,
}

impl Shared {
    fn script(&self) -> MutexGuard<'_, Script> {
        // A test that panicked while holding the lock must not hide what
        // was recorded from the other assertions.
        self.script.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_status(&self, seq: u64, status: u16) {
        if let Some(r) = self.script().requests.iter_mut().find(|r| r.seq == seq) {
            r.status = Some(status);
        }
        self.changed.notify_waiters();
    }
}

/// A running fake model server; stops when dropped.
pub struct FakeLlm {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
}

impl FakeLlm {
    /// Starts a fake that accepts `api_key` (Bearer for OpenAI, `x-api-key`
    /// for Anthropic) and answers [`Reply::review`] unless scripted.
    ///
    /// # Panics
    /// If no loopback port can be bound (a broken test machine).
    pub async fn start(api_key: &str) -> Self {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), api_key).await
    }

    /// Like [`FakeLlm::start`], listening on `addr` instead: e.g. a Docker
    /// network's gateway address, for runners in containers on it.
    ///
    /// # Panics
    /// If `addr` cannot be bound.
    pub async fn start_on(addr: SocketAddr, api_key: &str) -> Self {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| panic!("bind the fake model server on {addr}: {e}"));
        let addr = listener.local_addr().expect("local address");
        let (stop, shutdown) = watch::channel(false);
        let shared = Arc::new(Shared {
            key: api_key.to_owned(),
            script: Mutex::new(Script {
                queue: VecDeque::new(),
                default: Arc::new(|_| Reply::review()),
                requests: Vec::new(),
            }),
            changed: Notify::new(),
            shutdown,
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
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
        }
    }

    /// The base URL to configure (`http://127.0.0.1:PORT/v1`); the client
    /// appends `/chat/completions` or `/messages`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The port listened on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Queues `reply` for the next request not yet answered by the queue.
    pub fn push(&self, reply: Reply) -> &Self {
        self.shared.script().queue.push_back(reply);
        self
    }

    /// Sets the responder used when the queue is empty.
    pub fn set_default(&self, f: impl Fn(&ChatCall) -> Reply + Send + Sync + 'static) {
        self.shared.script().default = Arc::new(f);
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.script().requests.clone()
    }

    /// Requests answered with 200 so far.
    pub fn succeeded(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(RecordedRequest::succeeded)
            .collect()
    }

    /// Waits until at least `n` requests arrived or `timeout` passed;
    /// returns what was recorded.
    pub async fn wait_for_requests(&self, n: usize, timeout: Duration) -> Vec<RecordedRequest> {
        self.wait_until(timeout, |r| r.len() >= n).await
    }

    /// Waits until `done` holds for the recorded requests or `timeout`
    /// passed; returns what was recorded.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        done: impl Fn(&[RecordedRequest]) -> bool,
    ) -> Vec<RecordedRequest> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.changed.notified();
            let seen = self.requests();
            if done(&seen) || tokio::time::Instant::now() >= deadline {
                return seen;
            }
            let _ = tokio::time::timeout_at(deadline, notified).await;
        }
    }
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        self.server.abort();
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let provider = match (method == Method::POST, uri.path()) {
        (true, "/v1/chat/completions") => Some(Provider::OpenAi),
        (true, "/v1/messages") => Some(Provider::Anthropic),
        _ => None,
    };
    let text = String::from_utf8_lossy(&body).into_owned();
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    let seq = {
        let mut s = shared.script();
        let seq = u64::try_from(s.requests.len()).unwrap_or(u64::MAX) + 1;
        s.requests.push(RecordedRequest {
            seq,
            method: method.to_string(),
            path: uri
                .path_and_query()
                .map_or_else(|| uri.path().to_owned(), |p| p.as_str().to_owned()),
            headers: headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: text,
            json: parsed.clone(),
            provider,
            received_at: SystemTime::now(),
            received: Instant::now(),
            status: None,
        });
        seq
    };
    shared.changed.notify_waiters();
    let response = answer(&shared, provider, &headers, parsed).await;
    shared.set_status(seq, response.status().as_u16());
    response
}

async fn answer(
    shared: &Shared,
    provider: Option<Provider>,
    headers: &HeaderMap,
    body: Option<Value>,
) -> Response {
    let Some(provider) = provider else {
        return json_response(
            StatusCode::NOT_FOUND,
            json!({"error": {"message": "unknown path", "type": "invalid_request_error"}}),
        );
    };
    if let Err((status, message)) = check_headers(provider, headers, &shared.key) {
        return error(provider, status, message);
    }
    let call = match body {
        None => Err("the body is not valid JSON".to_owned()),
        Some(b) => match provider {
            Provider::OpenAi => parse_openai(b),
            Provider::Anthropic => parse_anthropic(b),
        },
    };
    let call = match call {
        Ok(c) => c,
        Err(msg) => return error(provider, 400, &msg),
    };
    let reply = {
        let mut s = shared.script();
        match s.queue.pop_front() {
            Some(r) => r,
            None => {
                let f = s.default.clone();
                drop(s);
                f(&call)
            }
        }
    };
    render(shared, provider, &call, reply).await
}

async fn render(shared: &Shared, provider: Provider, call: &ChatCall, reply: Reply) -> Response {
    let mut reply = reply;
    loop {
        match reply {
            Reply::Delay(d, inner) => {
                let mut down = shared.shutdown.clone();
                tokio::select! {
                    _ = tokio::time::sleep(d) => reply = *inner,
                    _ = down.wait_for(|v| *v) => return error(provider, 503, "the fake is shutting down"),
                }
            }
            Reply::Gated(gate, inner) => {
                let mut open = gate.0.subscribe();
                let mut down = shared.shutdown.clone();
                tokio::select! {
                    _ = open.wait_for(|v| *v) => reply = *inner,
                    _ = down.wait_for(|v| *v) => return error(provider, 503, "the fake is shutting down"),
                }
            }
            Reply::Hang => {
                let mut down = shared.shutdown.clone();
                let _ = down.wait_for(|v| *v).await;
                return error(provider, 503, "the fake is shutting down");
            }
            Reply::Content { text, usage } => {
                return json_response(StatusCode::OK, success(provider, call, &text, usage));
            }
            Reply::RateLimited { retry_after } => {
                let mut r = error(provider, 429, "Rate limit reached; please try again later.");
                if let Some(v) = retry_after
                    && let Ok(v) = v.parse()
                {
                    r.headers_mut().insert(header::RETRY_AFTER, v);
                }
                return r;
            }
            Reply::ServerError(status) => {
                return error(
                    provider,
                    status,
                    "The server had an error processing the request.",
                );
            }
            Reply::Raw { status, body } => {
                let status =
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                return (status, [(header::CONTENT_TYPE, "application/json")], body)
                    .into_response();
            }
            Reply::MalformedJson => {
                return (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "application/json")],
                    "{\"id\": \"chatcmpl-broken\", \"choices\": [ <html>oops",
                )
                    .into_response();
            }
            Reply::Truncated => {
                let full = success(provider, call, VALID_REVIEW, None).to_string();
                let half = full.as_bytes()[..full.len() / 2].to_vec();
                // The pause lets the status line and the first half reach
                // the client before the cut, as when a proxy drops a
                // connection mid-answer.
                let cut = futures::stream::once(async {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Err::<Vec<u8>, _>(std::io::Error::other("connection cut by the fake"))
                });
                let body = futures::stream::once(async move { Ok(half) }).chain(cut);
                return (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "application/json")],
                    Body::from_stream(body),
                )
                    .into_response();
            }
        }
    }
}

fn json_response(status: StatusCode, v: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

fn error(provider: Provider, status: u16, message: &str) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = match provider {
        Provider::OpenAi => {
            let kind = match status {
                401 => "invalid_request_error",
                429 => "requests",
                s if s >= 500 => "server_error",
                _ => "invalid_request_error",
            };
            json!({"error": {"message": message, "type": kind, "param": null, "code": null}})
        }
        Provider::Anthropic => {
            let kind = match status {
                401 => "authentication_error",
                429 => "rate_limit_error",
                529 => "overloaded_error",
                s if s >= 500 => "api_error",
                _ => "invalid_request_error",
            };
            json!({"type": "error", "error": {"type": kind, "message": message}})
        }
    };
    json_response(code, body)
}

/// Checks the credentials and required headers; the error is the status
/// and message to answer.
fn check_headers(
    provider: Provider,
    headers: &HeaderMap,
    key: &str,
) -> Result<(), (u16, &'static str)> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match provider {
        Provider::OpenAi => {
            let ok = get("authorization")
                .and_then(|v| v.strip_prefix("Bearer "))
                .is_some_and(|k| k == key);
            if !ok {
                return Err((401, "Incorrect API key provided."));
            }
        }
        Provider::Anthropic => {
            if get("x-api-key") != Some(key) {
                return Err((401, "invalid x-api-key"));
            }
            if get("anthropic-version").is_none_or(str::is_empty) {
                return Err((400, "anthropic-version: header is required"));
            }
        }
    }
    Ok(())
}

fn text_of(content: &Value, what: &str) -> Result<String, String> {
    match content {
        Value::String(s) => Ok(s.clone()),
        Value::Array(parts) => parts
            .iter()
            .map(|p| match (p["type"].as_str(), p["text"].as_str()) {
                (Some("text"), Some(t)) => Ok(t.to_owned()),
                _ => Err(format!("{what}: only text parts are supported")),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|v| v.join("")),
        _ => Err(format!("{what}: must be a string or an array of parts")),
    }
}

fn positive_int(body: &Value, field: &str) -> Result<Option<u64>, String> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if n > 0 => Ok(Some(n)),
            _ => Err(format!("{field}: must be a positive integer")),
        },
    }
}

fn temperature(body: &Value, max: f64) -> Result<Option<f64>, String> {
    match body.get("temperature") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_f64() {
            Some(t) if (0.0..=max).contains(&t) => Ok(Some(t)),
            _ => Err(format!("temperature: must be a number from 0 to {max}")),
        },
    }
}

fn model(body: &Value) -> Result<String, String> {
    match body.get("model").and_then(Value::as_str) {
        Some(m) if !m.is_empty() => Ok(m.to_owned()),
        _ => Err("model: you must provide a model parameter".into()),
    }
}

fn messages(body: &Value, roles: &[&str]) -> Result<Vec<CallMessage>, String> {
    let list = body
        .get("messages")
        .and_then(Value::as_array)
        .filter(|l| !l.is_empty())
        .ok_or("messages: must be a non-empty array")?;
    list.iter()
        .enumerate()
        .map(|(i, m)| {
            let role = m
                .get("role")
                .and_then(Value::as_str)
                .ok_or(format!("messages.{i}.role: field required"))?;
            if !roles.contains(&role) {
                return Err(format!(
                    "messages.{i}.role: unexpected role {role:?}; expected one of {}",
                    roles.join(", ")
                ));
            }
            let content = m
                .get("content")
                .ok_or(format!("messages.{i}.content: field required"))?;
            Ok(CallMessage {
                role: role.to_owned(),
                content: text_of(content, &format!("messages.{i}.content"))?,
            })
        })
        .collect()
}

fn parse_openai(body: Value) -> Result<ChatCall, String> {
    if !body.is_object() {
        return Err("We could not parse the JSON body of your request.".into());
    }
    let model = model(&body)?;
    let messages = messages(&body, &["system", "developer", "user", "assistant"])?;
    let max_tokens = match positive_int(&body, "max_completion_tokens")? {
        Some(n) => Some(n),
        None => positive_int(&body, "max_tokens")?,
    };
    let temperature = temperature(&body, 2.0)?;
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        return Err("stream: the fake does not stream".into());
    }
    let json_mode = match body.get("response_format") {
        None | Some(Value::Null) => false,
        Some(f) => match f.get("type").and_then(Value::as_str) {
            Some("text") => false,
            Some("json_schema") => true,
            Some("json_object") => {
                let mentions_json = messages
                    .iter()
                    .any(|m| m.content.to_ascii_lowercase().contains("json"));
                if !mentions_json {
                    return Err("'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'.".into());
                }
                true
            }
            _ => {
                return Err(
                    "response_format.type: must be one of text, json_object, json_schema".into(),
                );
            }
        },
    };
    Ok(ChatCall {
        provider: Provider::OpenAi,
        model,
        system: None,
        messages,
        max_tokens,
        json_mode,
        temperature,
        body,
    })
}

const ANTHROPIC_FIELDS: &[&str] = &[
    "model",
    "messages",
    "max_tokens",
    "system",
    "temperature",
    "top_p",
    "top_k",
    "stop_sequences",
    "stream",
    "metadata",
    "tools",
    "tool_choice",
    "thinking",
    "service_tier",
];

fn parse_anthropic(body: Value) -> Result<ChatCall, String> {
    let Some(obj) = body.as_object() else {
        return Err("the body must be a JSON object".into());
    };
    if let Some(extra) = obj.keys().find(|k| !ANTHROPIC_FIELDS.contains(&k.as_str())) {
        return Err(format!("{extra}: Extra inputs are not permitted"));
    }
    let model = model(&body)?;
    let max_tokens = positive_int(&body, "max_tokens")?;
    if max_tokens.is_none() {
        return Err("max_tokens: Field required".into());
    }
    let messages = messages(&body, &["user", "assistant"])?;
    let system = match body.get("system") {
        None | Some(Value::Null) => None,
        Some(s) => Some(text_of(s, "system")?),
    };
    let temperature = temperature(&body, 1.0)?;
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        return Err("stream: the fake does not stream".into());
    }
    Ok(ChatCall {
        provider: Provider::Anthropic,
        model,
        system,
        messages,
        max_tokens,
        json_mode: false,
        temperature,
        body,
    })
}

fn success(provider: Provider, call: &ChatCall, text: &str, usage: Option<(u64, u64)>) -> Value {
    let (input, output) = usage.unwrap_or((call.input_tokens(), tokens(text.chars().count())));
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    match provider {
        Provider::OpenAi => json!({
            "id": format!("chatcmpl-fake{created}"),
            "object": "chat.completion",
            "created": created,
            "model": call.model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": null},
                "logprobs": null,
                "finish_reason": "stop",
            }],
            "usage": {
                "prompt_tokens": input,
                "completion_tokens": output,
                "total_tokens": input + output,
            },
        }),
        Provider::Anthropic => json!({
            "id": format!("msg_fake{created}"),
            "type": "message",
            "role": "assistant",
            "model": call.model,
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "stop_sequence": null,
            "usage": {"input_tokens": input, "output_tokens": output},
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "sk-fake-123";

    fn http() -> reqwest::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client")
    }

    fn openai_body() -> Value {
        json!({
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "You review code. Answer in JSON."},
                {"role": "user", "content": "diff here"},
            ],
            "max_tokens": 100,
            "response_format": {"type": "json_object"},
        })
    }

    fn anthropic_body() -> Value {
        json!({
            "model": "claude-sonnet-4-0",
            "system": "You review code.",
            "messages": [{"role": "user", "content": "diff here"}],
            "max_tokens": 100,
        })
    }

    async fn openai(llm: &FakeLlm, body: &Value) -> reqwest::Response {
        http()
            .post(format!("{}/chat/completions", llm.base_url()))
            .bearer_auth(KEY)
            .json(body)
            .send()
            .await
            .expect("send")
    }

    async fn anthropic(llm: &FakeLlm, body: &Value) -> reqwest::Response {
        http()
            .post(format!("{}/messages", llm.base_url()))
            .header("x-api-key", KEY)
            .header("anthropic-version", "2023-06-01")
            .json(body)
            .send()
            .await
            .expect("send")
    }

    #[tokio::test]
    async fn answers_openai_in_its_shape_with_usage_and_records_the_request() {
        let llm = FakeLlm::start(KEY).await;
        let r = openai(&llm, &openai_body()).await;
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.expect("json");
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["model"], "gpt-4o-mini");
        assert_eq!(v["choices"][0]["message"]["content"], VALID_REVIEW);
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        // "You review code. Answer in JSON." + "diff here" = 41 chars.
        assert_eq!(v["usage"]["prompt_tokens"], 11);
        assert_eq!(v["usage"]["completion_tokens"], tokens(VALID_REVIEW.len()));
        let seen = llm.requests();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].header("Authorization"), Some("Bearer sk-fake-123"));
        assert_eq!(seen[0].provider, Some(Provider::OpenAi));
        assert_eq!(seen[0].json.as_ref(), Some(&openai_body()));
        assert!(seen[0].succeeded());
    }

    #[tokio::test]
    async fn answers_anthropic_in_its_shape_with_usage() {
        let llm = FakeLlm::start(KEY).await;
        llm.push(Reply::Content {
            text: "hello".into(),
            usage: Some((7, 3)),
        });
        let r = anthropic(&llm, &anthropic_body()).await;
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.expect("json");
        assert_eq!(v["type"], "message");
        assert_eq!(v["content"][0], json!({"type": "text", "text": "hello"}));
        assert_eq!(v["stop_reason"], "end_turn");
        assert_eq!(v["usage"], json!({"input_tokens": 7, "output_tokens": 3}));
        assert_eq!(llm.requests()[0].header("x-api-key"), Some(KEY));
    }

    #[tokio::test]
    async fn refuses_wrong_keys_and_missing_version_in_each_providers_shape() {
        let llm = FakeLlm::start(KEY).await;
        let r = http()
            .post(format!("{}/chat/completions", llm.base_url()))
            .bearer_auth("sk-other")
            .json(&openai_body())
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 401);
        let v: Value = r.json().await.expect("json");
        assert!(v["error"]["message"].is_string());
        let r = http()
            .post(format!("{}/messages", llm.base_url()))
            .header("x-api-key", KEY)
            .json(&anthropic_body())
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 400);
        let v: Value = r.json().await.expect("json");
        assert_eq!(v["type"], "error");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("anthropic-version")
        );
        let r = http()
            .post(format!("{}/messages", llm.base_url()))
            .header("x-api-key", "nope")
            .header("anthropic-version", "2023-06-01")
            .json(&anthropic_body())
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 401);
        assert_eq!(
            llm.requests().iter().map(|r| r.status).collect::<Vec<_>>(),
            [Some(401), Some(400), Some(401)]
        );
    }

    #[tokio::test]
    async fn refuses_bodies_the_real_apis_refuse() {
        let llm = FakeLlm::start(KEY).await;
        let mut no_json_word = openai_body();
        no_json_word["messages"][0]["content"] = json!("You review code.");
        let mut no_model = openai_body();
        no_model.as_object_mut().map(|o| o.remove("model"));
        let mut bad_role = openai_body();
        bad_role["messages"][1]["role"] = json!("robot");
        for (body, expected) in [
            (no_json_word, "must contain the word 'json'"),
            (no_model, "model"),
            (bad_role, "unexpected role"),
            (json!({"model": "m", "messages": []}), "messages"),
        ] {
            let r = openai(&llm, &body).await;
            assert_eq!(r.status(), 400, "{body}");
            let v: Value = r.json().await.expect("json");
            let msg = v["error"]["message"].as_str().unwrap_or("");
            assert!(msg.contains(expected), "{msg}");
        }
        let mut system_role = anthropic_body();
        system_role["messages"] =
            json!([{"role": "system", "content": "x"}, {"role": "user", "content": "y"}]);
        let mut no_max = anthropic_body();
        no_max.as_object_mut().map(|o| o.remove("max_tokens"));
        let mut extra = anthropic_body();
        extra["response_format"] = json!({"type": "json_object"});
        for (body, expected) in [
            (system_role, "unexpected role \"system\""),
            (no_max, "max_tokens: Field required"),
            (extra, "response_format: Extra inputs are not permitted"),
        ] {
            let r = anthropic(&llm, &body).await;
            assert_eq!(r.status(), 400, "{body}");
            let v: Value = r.json().await.expect("json");
            let msg = v["error"]["message"].as_str().unwrap_or("");
            assert!(msg.contains(expected), "{msg}");
        }
    }

    #[tokio::test]
    async fn scripted_failures_come_in_order_then_the_default() {
        let llm = FakeLlm::start(KEY).await;
        llm.push(Reply::rate_limited(Some("2")))
            .push(Reply::ServerError(503))
            .push(Reply::MalformedJson)
            .push(Reply::Raw {
                status: 418,
                body: "{}".into(),
            });
        let r = openai(&llm, &openai_body()).await;
        assert_eq!(r.status(), 429);
        assert_eq!(
            r.headers().get("retry-after").and_then(|v| v.to_str().ok()),
            Some("2")
        );
        assert_eq!(openai(&llm, &openai_body()).await.status(), 503);
        let r = openai(&llm, &openai_body()).await;
        assert_eq!(r.status(), 200);
        let text = r.text().await.expect("text");
        assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");
        assert_eq!(openai(&llm, &openai_body()).await.status(), 418);
        assert_eq!(openai(&llm, &openai_body()).await.status(), 200);
    }

    #[tokio::test]
    async fn a_truncated_body_fails_to_read() {
        let llm = FakeLlm::start(KEY).await;
        llm.push(Reply::Truncated);
        let r = anthropic(&llm, &anthropic_body()).await;
        assert_eq!(r.status(), 200);
        assert!(r.bytes().await.is_err(), "the body must end early");
    }

    #[tokio::test]
    async fn delays_outlast_a_client_timeout_and_hangs_never_answer() {
        let llm = FakeLlm::start(KEY).await;
        llm.push(Reply::delay(Duration::from_millis(300), Reply::review()));
        let t0 = Instant::now();
        assert_eq!(openai(&llm, &openai_body()).await.status(), 200);
        assert!(t0.elapsed() >= Duration::from_millis(300));
        llm.push(Reply::Hang);
        let _ = http();
        let quick = reqwest::Client::builder()
            .timeout(Duration::from_millis(200))
            .build()
            .expect("client");
        let r = quick
            .post(format!("{}/chat/completions", llm.base_url()))
            .bearer_auth(KEY)
            .json(&openai_body())
            .send()
            .await;
        assert!(r.is_err_and(|e| e.is_timeout()));
        let seen = llm.wait_for_requests(2, Duration::from_secs(1)).await;
        assert_eq!(seen[1].status, None, "never answered");
    }

    #[tokio::test]
    async fn a_gated_call_waits_for_the_gate() {
        let llm = FakeLlm::start(KEY).await;
        let gate = Gate::new();
        llm.push(Reply::gated(&gate, Reply::content("after")));
        let url = format!("{}/messages", llm.base_url());
        let call = tokio::spawn(async move {
            http()
                .post(url)
                .header("x-api-key", KEY)
                .header("anthropic-version", "2023-06-01")
                .json(&anthropic_body())
                .send()
                .await
                .expect("send")
                .json::<Value>()
                .await
                .expect("json")
        });
        let seen = llm.wait_for_requests(1, Duration::from_secs(5)).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(seen[0].status, None);
        assert!(!call.is_finished(), "held");
        gate.open();
        let v = call.await.expect("join");
        assert_eq!(v["content"][0]["text"], "after");
        assert!(llm.requests()[0].succeeded());
    }

    #[tokio::test]
    async fn the_default_responder_sees_the_parsed_call() {
        let llm = FakeLlm::start(KEY).await;
        llm.set_default(|c| {
            Reply::content(format!(
                "{:?} {} {:?} {:?} {}",
                c.provider,
                c.model,
                c.system,
                c.max_tokens,
                c.last_user().unwrap_or("")
            ))
        });
        let v: Value = anthropic(&llm, &anthropic_body())
            .await
            .json()
            .await
            .expect("json");
        assert_eq!(
            v["content"][0]["text"],
            "Anthropic claude-sonnet-4-0 Some(\"You review code.\") Some(100) diff here"
        );
    }

    #[tokio::test]
    async fn dropping_the_fake_releases_a_hung_request() {
        let llm = FakeLlm::start(KEY).await;
        llm.push(Reply::Hang);
        let url = format!("{}/chat/completions", llm.base_url());
        let call = tokio::spawn(async move {
            http()
                .post(url)
                .bearer_auth(KEY)
                .json(&openai_body())
                .send()
                .await
                .map(|r| r.status().as_u16())
        });
        llm.wait_for_requests(1, Duration::from_secs(5)).await;
        drop(llm);
        let status = tokio::time::timeout(Duration::from_secs(5), call)
            .await
            .expect("released")
            .expect("join");
        assert_eq!(status.ok(), Some(503));
    }
}
