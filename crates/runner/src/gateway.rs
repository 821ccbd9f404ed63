//! The model gateway: per task, the runner serves the protocol of
//! [`ai_review_executor::gateway`] on a Unix socket inside the task's
//! workspace (`/workspace/model.sock` in the container) and forwards each
//! call to the task's model provider.
//!
//! The container has no network and never holds the key; this is the only
//! way out, and it only speaks "complete this conversation". For each
//! `POST /v1/chat` the gateway:
//!
//! 1. refuses the call with 402 `budget_exhausted` if the tokens used so far
//!    (cached answers included, so a retried task decides the same way),
//!    plus the estimated prompt (bytes / 3), plus `max_tokens` would exceed
//!    the task's `tokenBudget`;
//! 2. answers from the on-disk cache when the same task already made the
//!    same call (see [`cache_key`]): a retried task does not pay twice;
//! 3. otherwise translates the call to OpenAI Chat Completions or Anthropic
//!    Messages, adds the key (`Authorization: Bearer` / `x-api-key`), and
//!    sends it with the task's `timeoutMs` per attempt, retrying 429, 5xx
//!    and connection failures with capped exponential backoff and full
//!    jitter, honouring `Retry-After` (seconds or an HTTP date), at most
//!    [`RetryPolicy::max_retries`] times and never past the task deadline.
//!    A timeout is not retried (the provider may well have finished, and
//!    billed, the slow answer): it is 504 at once;
//! 4. records usage ([`ModelUsage`]) and writes the answer to the cache.
//!
//! The provider call runs in its own task, so an answer the provider
//! produced (and billed) is cached even if the executor went away meanwhile
//! (its container was killed, the runner drained): the next attempt gets it
//! for free.
//!
//! The cache lives in `DOCKER_WORKSPACE_BASE/model-cache/<sha256>.json`,
//! outside every runner's directory so leftover reaping keeps it; files are
//! written atomically (temporary file + rename), readable by the runner's
//! user only, and pruned after [`CACHE_MAX_AGE`] when a runner starts.
//!
//! Logs name the task, model, label, duration and tokens; never the key or
//! the prompt.

use crate::metrics::Metrics;
use ai_review_domain::LlmProvider;
use ai_review_executor::gateway::{
    ChatMessage, ChatRequest, ChatResponse, ChatRole, GatewayError, ModelUsage, TokenUsage,
};
use ai_review_protocol::runner::AiConfigSpec;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Directory of the response cache under `DOCKER_WORKSPACE_BASE`.
pub const CACHE_DIR: &str = "model-cache";
/// Cache entries older than this are deleted when a runner starts.
pub const CACHE_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// The Anthropic API version the gateway speaks.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";
/// Largest request body the gateway accepts from the executor.
const MAX_REQUEST_BYTES: usize = 16 * 1024 * 1024;
/// Longest provider error message repeated to the executor.
const MAX_PROVIDER_MESSAGE: usize = 300;
/// Version of the cache key and entry format.
const CACHE_FORMAT: u32 = 1;

/// How the gateway retries a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// Backoff before the first retry (doubled each time, full jitter).
    pub base_delay: Duration,
    /// Longest single wait; a `Retry-After` beyond it ends the call.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(60),
        }
    }
}

/// Everything one task's gateway needs.
#[derive(Clone)]
pub struct GatewayConfig {
    /// The task (part of every cache key, and logged).
    pub task_id: String,
    /// The task's model configuration, key included.
    pub ai: AiConfigSpec,
    /// Where answers are cached (`None`: no cache).
    pub cache_dir: Option<PathBuf>,
    /// No provider call or retry wait goes past this instant.
    pub deadline: Instant,
    /// Retries.
    pub retry: RetryPolicy,
    /// HTTP client for the provider (see [`http_client`]).
    pub http: reqwest::Client,
    /// The runner's registry: answers by status, billed tokens, cache hits.
    pub metrics: Arc<Metrics>,
}

/// Why a gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayStartError {
    /// The configured base URL is not an http(s) URL.
    #[error("the AI config's baseUrl {0:?} must be an http:// or https:// URL")]
    BaseUrl(String),
    /// The socket could not be created.
    #[error("cannot listen on {path}: {source}")]
    Socket {
        /// The socket path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Builds the HTTP client used for provider calls (rustls; per-call
/// timeouts are set on each request).
pub fn http_client() -> Result<reqwest::Client, reqwest::Error> {
    ai_review_protocol::client::ensure_crypto_provider();
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .build()
}

/// A running gateway for one task.
pub struct Gateway {
    socket: PathBuf,
    inner: Arc<Inner>,
    stop: CancellationToken,
    server: tokio::task::JoinHandle<()>,
}

impl Gateway {
    /// Listens on `socket` (replacing a stale file, mode 0666 so the
    /// container's user can connect) and serves until [`Gateway::stop`].
    pub async fn start(socket: &Path, cfg: GatewayConfig) -> Result<Self, GatewayStartError> {
        let base = cfg.ai.base_url.trim_end_matches('/').to_owned();
        if url::Url::parse(&base).map_or(true, |u| !matches!(u.scheme(), "http" | "https")) {
            return Err(GatewayStartError::BaseUrl(cfg.ai.base_url.clone()));
        }
        let endpoint = endpoint_url(&base, cfg.ai.provider)
            .ok_or_else(|| GatewayStartError::BaseUrl(cfg.ai.base_url.clone()))?;
        let sock_err = |source| GatewayStartError::Socket {
            path: socket.to_owned(),
            source,
        };
        match tokio::fs::remove_file(socket).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(sock_err(e)),
            _ => {}
        }
        let listener = bind(socket).map_err(sock_err)?;
        // The container runs as another user (65534): it needs write
        // permission on the socket to connect.
        let perms = std::os::unix::fs::PermissionsExt::from_mode(0o666);
        tokio::fs::set_permissions(socket, perms)
            .await
            .map_err(sock_err)?;
        let usage = ModelUsage {
            provider: cfg.ai.provider.as_str().to_owned(),
            model: cfg.ai.model.clone(),
            token_budget: Some(cfg.ai.token_budget),
            ..ModelUsage::default()
        };
        // The gateway's own tasks do not inherit the caller's span; they
        // take it from here so their log lines name the task and request.
        let span = tracing::Span::current();
        let inner = Arc::new(Inner {
            endpoint,
            cfg,
            book: Mutex::new(Book { usage, reserved: 0 }),
            span: span.clone(),
        });
        let app = Router::new()
            .route("/v1/chat", post(chat))
            .route("/v1/usage", get(usage_of))
            .fallback(not_found)
            .with_state(inner.clone());
        let stop = CancellationToken::new();
        let shutdown = stop.clone();
        let server = tokio::spawn(
            async move {
                let served = axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown.cancelled_owned())
                    .await;
                if let Err(e) = served {
                    tracing::warn!(error = %e, "model gateway stopped with an error");
                }
            }
            .instrument(span),
        );
        Ok(Self {
            socket: socket.to_owned(),
            inner,
            stop,
            server,
        })
    }

    /// Usage so far.
    pub fn usage(&self) -> ModelUsage {
        self.inner.usage()
    }

    /// Stops serving, removes the socket and returns the task's usage.
    /// Provider calls still in flight finish in the background and fill
    /// the cache.
    pub async fn stop(self) -> ModelUsage {
        self.stop.cancel();
        let mut server = self.server;
        if tokio::time::timeout(Duration::from_secs(2), &mut server)
            .await
            .is_err()
        {
            server.abort();
        }
        let _ = tokio::fs::remove_file(&self.socket).await;
        self.inner.usage()
    }
}

/// Longest socket path `bind` takes directly (`sun_path` holds 108 bytes
/// with the terminating NUL; keep a margin).
const MAX_SOCKET_PATH: usize = 100;

/// Binds `socket`; a path too long for `sun_path` (deep workspace bases,
/// long runner ids) is reached through `/proc/self/fd/<dir fd>/<name>`.
fn bind(socket: &Path) -> std::io::Result<tokio::net::UnixListener> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::io::AsRawFd;
    if socket.as_os_str().as_bytes().len() <= MAX_SOCKET_PATH {
        return tokio::net::UnixListener::bind(socket);
    }
    let (Some(dir), Some(name)) = (socket.parent(), socket.file_name()) else {
        return tokio::net::UnixListener::bind(socket);
    };
    let dir = std::fs::File::open(dir)?;
    let short = Path::new("/proc/self/fd")
        .join(dir.as_raw_fd().to_string())
        .join(name);
    tokio::net::UnixListener::bind(short)
}

struct Book {
    usage: ModelUsage,
    /// Tokens promised to calls in flight (estimate + max_tokens).
    reserved: u64,
}

struct Inner {
    cfg: GatewayConfig,
    endpoint: String,
    book: Mutex<Book>,
    /// The span of the task the gateway serves.
    span: tracing::Span,
}

impl Inner {
    fn book(&self) -> MutexGuard<'_, Book> {
        // Usage figures stay meaningful even if a holder panicked.
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn usage(&self) -> ModelUsage {
        let mut u = self.book().usage.clone();
        u.estimated_cost_usd = estimated_cost(&self.cfg.ai, &u);
        u
    }
}

/// A gateway failure: HTTP status and the [`GatewayError`] body.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl Refusal {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
    fn bad_request(m: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", m)
    }
    fn upstream(m: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, "upstream_error", m)
    }
    fn timeout(m: impl Into<String>) -> Self {
        Self::new(StatusCode::GATEWAY_TIMEOUT, "upstream_timeout", m)
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = GatewayError {
            code: self.code.to_owned(),
            message: self.message,
        };
        (self.status, axum::Json(body)).into_response()
    }
}

async fn not_found() -> Refusal {
    Refusal::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "the gateway serves POST /v1/chat and GET /v1/usage",
    )
}

async fn usage_of(State(inner): State<Arc<Inner>>) -> axum::Json<ModelUsage> {
    axum::Json(inner.usage())
}

async fn chat(State(inner): State<Arc<Inner>>, body: Body) -> Response {
    let metrics = inner.cfg.metrics.clone();
    let r = answer_chat(inner, body).await;
    metrics.gateway_request(r.status().as_u16());
    r
}

async fn answer_chat(inner: Arc<Inner>, body: Body) -> Response {
    let bytes = match axum::body::to_bytes(body, MAX_REQUEST_BYTES).await {
        Ok(b) => b,
        Err(e) => {
            return Refusal::bad_request(format!(
                "cannot read the request body (at most {MAX_REQUEST_BYTES} bytes): {e}"
            ))
            .into_response();
        }
    };
    let req: ChatRequest = match serde_json::from_slice(&bytes) {
        Ok(r) => r,
        Err(e) => {
            return Refusal::bad_request(format!("not a valid chat request: {e}")).into_response();
        }
    };
    // The provider call runs detached: if the executor disconnects, an
    // answer already paid for still reaches the cache.
    let span = inner.span.clone();
    match tokio::spawn(complete(inner, req).instrument(span)).await {
        Ok(Ok(r)) => axum::Json(r).into_response(),
        Ok(Err(refusal)) => refusal.into_response(),
        Err(e) => Refusal::upstream(format!("the gateway failed: {e}")).into_response(),
    }
}

fn prompt_bytes(messages: &[ChatMessage]) -> usize {
    messages.iter().map(|m| m.content.len()).sum()
}

fn estimate_tokens(bytes: usize) -> u64 {
    u64::try_from(bytes.div_ceil(3)).unwrap_or(u64::MAX)
}

async fn complete(inner: Arc<Inner>, req: ChatRequest) -> Result<ChatResponse, Refusal> {
    let ai = &inner.cfg.ai;
    if req.messages.is_empty() {
        return Err(Refusal::bad_request("messages must not be empty"));
    }
    if !req.messages.iter().any(|m| m.role != ChatRole::System) {
        return Err(Refusal::bad_request(
            "messages need at least one user or assistant message",
        ));
    }
    let max_tokens = req
        .max_tokens
        .unwrap_or(ai.max_output_tokens)
        .min(ai.max_output_tokens)
        .max(1);
    let estimate = estimate_tokens(prompt_bytes(&req.messages));
    let needed = estimate.saturating_add(u64::from(max_tokens));
    {
        let mut book = inner.book();
        let used = book.usage.input_tokens + book.usage.output_tokens + book.reserved;
        if used.saturating_add(needed) > ai.token_budget {
            return Err(Refusal::new(
                StatusCode::PAYMENT_REQUIRED,
                "budget_exhausted",
                format!(
                    "this call may need {needed} tokens (about {estimate} prompt + {max_tokens} answer) but only {} of the task's budget of {} remain",
                    ai.token_budget.saturating_sub(used),
                    ai.token_budget
                ),
            ));
        }
        book.reserved += needed;
    }
    let result = answer(&inner, &req, max_tokens).await;
    let mut book = inner.book();
    book.reserved = book.reserved.saturating_sub(needed);
    if let Ok(r) = &result {
        let u = &mut book.usage;
        u.calls += 1;
        u.input_tokens += r.usage.input_tokens;
        u.output_tokens += r.usage.output_tokens;
        if r.cached {
            u.cached_calls += 1;
            inner.cfg.metrics.gateway_cache_hit();
        } else {
            u.billed_input_tokens += r.usage.input_tokens;
            u.billed_output_tokens += r.usage.output_tokens;
            inner
                .cfg
                .metrics
                .gateway_tokens(r.usage.input_tokens, r.usage.output_tokens);
        }
    }
    result
}

async fn answer(
    inner: &Inner,
    req: &ChatRequest,
    max_tokens: u32,
) -> Result<ChatResponse, Refusal> {
    let cfg = &inner.cfg;
    let label = req.label.as_deref().unwrap_or("");
    let key = cache_key(&cfg.task_id, &cfg.ai, max_tokens, req.json, &req.messages);
    if let Some(dir) = &cfg.cache_dir
        && let Some(mut hit) = read_cache(dir, &key).await
    {
        hit.cached = true;
        tracing::info!(
            task.id = %cfg.task_id, model = %cfg.ai.model, label,
            input_tokens = hit.usage.input_tokens, output_tokens = hit.usage.output_tokens,
            cached = true, "model call answered from the cache"
        );
        return Ok(hit);
    }
    let started = Instant::now();
    let (result, retries, waited) = call_with_retries(inner, req, max_tokens).await;
    {
        let mut book = inner.book();
        book.usage.retries += u64::from(retries);
        book.usage.latency_ms += u64::try_from(waited.as_millis()).unwrap_or(u64::MAX);
    }
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    match &result {
        Ok(r) => {
            tracing::info!(
                task.id = %cfg.task_id, model = %cfg.ai.model, label, duration_ms, retries,
                input_tokens = r.usage.input_tokens, output_tokens = r.usage.output_tokens,
                cached = false, "model call"
            );
            if let Some(dir) = &cfg.cache_dir
                && let Err(e) = write_cache(dir, &key, r).await
            {
                tracing::warn!(task.id = %cfg.task_id, error = %e, "cannot cache a model answer");
            }
        }
        Err(e) => tracing::warn!(
            task.id = %cfg.task_id, model = %cfg.ai.model, label, duration_ms, retries,
            status = e.status.as_u16(), error = %e.message, "model call failed"
        ),
    }
    result
}

/// One failed attempt.
enum Failed {
    /// Worth another attempt (429, 5xx, connection trouble), after
    /// `retry_after` if the provider said so.
    Retryable {
        rate_limited: bool,
        retry_after: Option<Duration>,
        message: String,
    },
    /// Final.
    Final(Refusal),
}

async fn call_with_retries(
    inner: &Inner,
    req: &ChatRequest,
    max_tokens: u32,
) -> (Result<ChatResponse, Refusal>, u32, Duration) {
    let cfg = &inner.cfg;
    let body = match cfg.ai.provider {
        LlmProvider::OpenAi => openai_body(&cfg.ai, req, max_tokens),
        LlmProvider::Anthropic => anthropic_body(&cfg.ai, req, max_tokens),
    };
    let per_call = Duration::from_millis(cfg.ai.timeout_ms.max(1));
    let mut retries = 0u32;
    let mut waited = Duration::ZERO;
    loop {
        let left = cfg.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (
                Err(Refusal::timeout("the task's deadline has passed")),
                retries,
                waited,
            );
        }
        let t0 = Instant::now();
        let attempt = attempt(inner, &body, per_call.min(left)).await;
        waited += t0.elapsed();
        let (rate_limited, retry_after, message) = match attempt {
            Ok(r) => return (Ok(r), retries, waited),
            Err(Failed::Final(r)) => return (Err(r), retries, waited),
            Err(Failed::Retryable {
                rate_limited,
                retry_after,
                message,
            }) => (rate_limited, retry_after, message),
        };
        let give_up = |why: String| {
            let message = format!("{message}{why}");
            if rate_limited {
                Refusal::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message)
            } else {
                Refusal::upstream(message)
            }
        };
        if retries >= cfg.retry.max_retries {
            let why = format!(" (after {retries} retries)");
            return (Err(give_up(why)), retries, waited);
        }
        let wait = match retry_after {
            Some(d) if d > cfg.retry.max_delay => {
                let why = format!(
                    " (the provider asks to wait {} s, more than the {} s the gateway waits)",
                    d.as_secs(),
                    cfg.retry.max_delay.as_secs()
                );
                return (Err(give_up(why)), retries, waited);
            }
            Some(d) => d,
            None => backoff(retries, &cfg.retry),
        };
        if Instant::now() + wait >= cfg.deadline {
            let why = " (no time left before the task's deadline to retry)".to_owned();
            return (Err(give_up(why)), retries, waited);
        }
        tokio::time::sleep(wait).await;
        retries += 1;
    }
}

/// Full jitter: uniformly between half and all of `base · 2^n`, capped.
fn backoff(n: u32, p: &RetryPolicy) -> Duration {
    let exp = p
        .base_delay
        .saturating_mul(1u32 << n.min(16))
        .min(p.max_delay);
    let ms = u64::try_from(exp.as_millis()).unwrap_or(u64::MAX).max(1);
    Duration::from_millis(rand::random_range(ms / 2..=ms))
}

/// Parses `Retry-After`: delta seconds, or an HTTP date (a date in the past
/// means now).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The provider endpoint under `base`: `/chat/completions` or `/messages`
/// appended to the path, any query kept (Azure-style base URLs carry
/// `?api-version=…`).
pub fn endpoint_url(base: &str, provider: LlmProvider) -> Option<String> {
    let mut u = url::Url::parse(base).ok()?;
    let suffix = match provider {
        LlmProvider::OpenAi => "chat/completions",
        LlmProvider::Anthropic => "messages",
    };
    let path = format!("{}/{suffix}", u.path().trim_end_matches('/'));
    u.set_path(&path);
    Some(u.to_string())
}

/// Azure OpenAI takes the key in `api-key` instead of a bearer token.
fn is_azure(endpoint: &str) -> bool {
    url::Url::parse(endpoint)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .is_some_and(|h| {
            h.ends_with(".openai.azure.com") || h.ends_with(".cognitiveservices.azure.com")
        })
}

async fn attempt(inner: &Inner, body: &Value, timeout: Duration) -> Result<ChatResponse, Failed> {
    let cfg = &inner.cfg;
    let mut rb = cfg
        .http
        .post(&inner.endpoint)
        .timeout(timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_string());
    let key = cfg.ai.api_key.as_ref().filter(|k| !k.is_empty());
    rb = match (cfg.ai.provider, key) {
        (LlmProvider::OpenAi, Some(k)) if is_azure(&inner.endpoint) => {
            rb.header("api-key", k.expose())
        }
        (LlmProvider::OpenAi, Some(k)) => rb.bearer_auth(k.expose()),
        (LlmProvider::OpenAi, None) => rb,
        (LlmProvider::Anthropic, k) => {
            let rb = rb.header("anthropic-version", ANTHROPIC_VERSION);
            match k {
                Some(k) => rb.header("x-api-key", k.expose()),
                None => rb,
            }
        }
    };
    let transport = |e: reqwest::Error| {
        if e.is_timeout() {
            Failed::Final(Refusal::timeout(format!(
                "the provider did not answer within {} ms",
                timeout.as_millis()
            )))
        } else {
            Failed::Retryable {
                rate_limited: false,
                retry_after: None,
                message: format!(
                    "cannot reach the provider at {}: {}",
                    cfg.ai.base_url,
                    error_chain(&e.without_url())
                ),
            }
        }
    };
    let resp = rb.send().await.map_err(transport)?;
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, SystemTime::now()));
    let bytes = resp.bytes().await.map_err(transport)?;
    if status.is_success() {
        let v: Value = serde_json::from_slice(&bytes).map_err(|e| {
            Failed::Final(Refusal::upstream(format!(
                "the provider's answer is not valid JSON: {e}"
            )))
        })?;
        let parsed = match cfg.ai.provider {
            LlmProvider::OpenAi => parse_openai(&v),
            LlmProvider::Anthropic => parse_anthropic(&v),
        };
        return parsed.map_err(|m| {
            Failed::Final(Refusal::upstream(format!(
                "the provider's answer is malformed: {m}"
            )))
        });
    }
    let detail = provider_message(&bytes);
    let message = format!("the provider answered {}: {detail}", status.as_u16());
    if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        Err(Failed::Retryable {
            rate_limited: true,
            retry_after,
            message,
        })
    } else if status.is_server_error() {
        Err(Failed::Retryable {
            rate_limited: false,
            retry_after,
            message,
        })
    } else {
        Err(Failed::Final(Refusal::upstream(message)))
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// The provider's error message (both providers use `error.message`), cut.
fn provider_message(body: &[u8]) -> String {
    let v: Option<Value> = serde_json::from_slice(body).ok();
    let text = v
        .as_ref()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    let text = text.trim();
    if text.is_empty() {
        return "no details".into();
    }
    match text.char_indices().nth(MAX_PROVIDER_MESSAGE) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

/// OpenAI's reasoning models refuse `max_tokens`; every other
/// OpenAI-compatible server knows it (and some only it).
fn wants_max_completion_tokens(model: &str) -> bool {
    ["o1", "o3", "o4", "gpt-5"]
        .iter()
        .any(|p| model.starts_with(p))
}

fn role(r: ChatRole) -> &'static str {
    match r {
        ChatRole::System => "system",
        ChatRole::User => "user",
        ChatRole::Assistant => "assistant",
    }
}

/// The temperature as the decimal the user wrote (an `f32` widened to
/// `f64` would show as 0.20000000298023224).
fn temperature(t: f32) -> Value {
    t.to_string()
        .parse::<f64>()
        .map_or(Value::Null, |v| json!(v))
}

fn openai_body(ai: &AiConfigSpec, req: &ChatRequest, max_tokens: u32) -> Value {
    let messages: Vec<Value> = req
        .messages
        .iter()
        .map(|m| json!({"role": role(m.role), "content": m.content}))
        .collect();
    let mut body = json!({"model": ai.model, "messages": messages});
    let limit = if wants_max_completion_tokens(&ai.model) {
        "max_completion_tokens"
    } else {
        "max_tokens"
    };
    body[limit] = json!(max_tokens);
    if let Some(t) = ai.temperature {
        body["temperature"] = temperature(t);
    }
    if req.json {
        body["response_format"] = json!({"type": "json_object"});
    }
    body
}

fn anthropic_body(ai: &AiConfigSpec, req: &ChatRequest, max_tokens: u32) -> Value {
    let system: Vec<&str> = req
        .messages
        .iter()
        .filter(|m| m.role == ChatRole::System)
        .map(|m| m.content.as_str())
        .collect();
    let messages: Vec<Value> = req
        .messages
        .iter()
        .filter(|m| m.role != ChatRole::System)
        .map(|m| json!({"role": role(m.role), "content": m.content}))
        .collect();
    let mut body = json!({"model": ai.model, "max_tokens": max_tokens, "messages": messages});
    if !system.is_empty() {
        body["system"] = json!(system.join("\n\n"));
    }
    if let Some(t) = ai.temperature {
        body["temperature"] = temperature(t);
    }
    body
}

fn tokens_field(v: &Value, field: &str) -> Result<u64, String> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(0),
        Some(n) => n
            .as_u64()
            .ok_or_else(|| format!("usage.{field} is not a whole number")),
    }
}

fn parse_openai(v: &Value) -> Result<ChatResponse, String> {
    let choice = v
        .get("choices")
        .and_then(|c| c.get(0))
        .ok_or("no choices")?;
    let message = choice.get("message").ok_or("choices[0] has no message")?;
    let content = match message.get("content") {
        Some(Value::String(s)) => s.clone(),
        _ => {
            let refusal = message["refusal"].as_str().unwrap_or("");
            return Err(if refusal.is_empty() {
                "choices[0].message has no text content".into()
            } else {
                format!("the model refused: {refusal}")
            });
        }
    };
    let usage = v.get("usage").ok_or("no usage")?;
    Ok(ChatResponse {
        content,
        usage: TokenUsage {
            input_tokens: tokens_field(usage, "prompt_tokens")?,
            output_tokens: tokens_field(usage, "completion_tokens")?,
        },
        cached: false,
        model: v["model"].as_str().unwrap_or_default().to_owned(),
        finish_reason: choice["finish_reason"].as_str().map(str::to_owned),
    })
}

fn parse_anthropic(v: &Value) -> Result<ChatResponse, String> {
    let blocks = v
        .get("content")
        .and_then(Value::as_array)
        .ok_or("no content array")?;
    let texts: Vec<&str> = blocks
        .iter()
        .filter(|b| b["type"] == "text")
        .filter_map(|b| b["text"].as_str())
        .collect();
    if texts.is_empty() {
        return Err("no text content block".into());
    }
    let usage = v.get("usage").ok_or("no usage")?;
    // Prompt tokens served from Anthropic's prompt cache are reported
    // apart; they are still prompt tokens of this call.
    let input = tokens_field(usage, "input_tokens")?
        + tokens_field(usage, "cache_creation_input_tokens")?
        + tokens_field(usage, "cache_read_input_tokens")?;
    Ok(ChatResponse {
        content: texts.concat(),
        usage: TokenUsage {
            input_tokens: input,
            output_tokens: tokens_field(usage, "output_tokens")?,
        },
        cached: false,
        model: v["model"].as_str().unwrap_or_default().to_owned(),
        finish_reason: v["stop_reason"].as_str().map(str::to_owned),
    })
}

/// The cache key of a call: SHA-256 over the task, the provider, base URL,
/// model, temperature, `max_tokens`, the JSON flag and the messages. The
/// task id keeps one task's answers from ever serving another's; the label
/// is left out (it does not change the answer).
pub fn cache_key(
    task_id: &str,
    ai: &AiConfigSpec,
    max_tokens: u32,
    json_mode: bool,
    messages: &[ChatMessage],
) -> String {
    let doc = json!({
        "format": CACHE_FORMAT,
        "task": task_id,
        "provider": ai.provider.as_str(),
        "baseUrl": ai.base_url,
        "model": ai.model,
        "temperature": ai.temperature,
        "maxTokens": max_tokens,
        "json": json_mode,
        "messages": messages,
    });
    hex::encode(Sha256::digest(doc.to_string().as_bytes()))
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CacheEntry {
    format: u32,
    response: ChatResponse,
}

async fn read_cache(dir: &Path, key: &str) -> Option<ChatResponse> {
    let path = dir.join(format!("{key}.json"));
    let raw = tokio::fs::read(&path).await.ok()?;
    match serde_json::from_slice::<CacheEntry>(&raw) {
        Ok(e) if e.format == CACHE_FORMAT => Some(e.response),
        _ => {
            let _ = tokio::fs::remove_file(&path).await;
            None
        }
    }
}

async fn write_cache(dir: &Path, key: &str, r: &ChatResponse) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if tokio::fs::metadata(dir).await.is_err() {
        tokio::fs::create_dir_all(dir).await?;
        // Cached answers quote the reviewed code.
        tokio::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).await?;
    }
    let entry = CacheEntry {
        format: CACHE_FORMAT,
        response: ChatResponse {
            cached: false,
            ..r.clone()
        },
    };
    let bytes = serde_json::to_vec(&entry).map_err(std::io::Error::other)?;
    let tmp = dir.join(format!(".{key}.{:016x}.tmp", rand::random::<u64>()));
    tokio::fs::write(&tmp, bytes).await?;
    tokio::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).await?;
    let renamed = tokio::fs::rename(&tmp, dir.join(format!("{key}.json"))).await;
    if renamed.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    renamed
}

/// Deletes cache files (and abandoned temporary files) older than
/// `max_age`; returns how many were deleted. A missing directory is empty.
pub async fn prune_cache(dir: &Path, max_age: Duration) -> usize {
    let Ok(mut entries) = tokio::fs::read_dir(dir).await else {
        return 0;
    };
    let now = SystemTime::now();
    let mut removed = 0;
    while let Ok(Some(e)) = entries.next_entry().await {
        let Ok(meta) = e.metadata().await else {
            continue;
        };
        let old = meta
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .is_some_and(|age| age > max_age);
        if meta.is_file() && old && tokio::fs::remove_file(e.path()).await.is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Built-in prices in US dollars per million (prompt, generated) tokens for
/// well-known models, by name prefix, most specific first. Published list
/// prices as of mid-2025; an AI config's `inputCostPerMtok` /
/// `outputCostPerMtok` override them.
const PRICES: &[(&str, f64, f64)] = &[
    ("gpt-4o-mini", 0.15, 0.60),
    ("gpt-4o", 2.50, 10.00),
    ("gpt-4.1-nano", 0.10, 0.40),
    ("gpt-4.1-mini", 0.40, 1.60),
    ("gpt-4.1", 2.00, 8.00),
    ("o4-mini", 1.10, 4.40),
    ("o3-mini", 1.10, 4.40),
    ("claude-3-5-haiku", 0.80, 4.00),
    ("claude-3-haiku", 0.25, 1.25),
    ("claude-3-5-sonnet", 3.00, 15.00),
    ("claude-3-7-sonnet", 3.00, 15.00),
    ("claude-sonnet-4", 3.00, 15.00),
    ("claude-opus-4", 15.00, 75.00),
];

/// Known list price (prompt, generated) per million tokens of `model`.
pub fn builtin_price(model: &str) -> Option<(f64, f64)> {
    PRICES
        .iter()
        .find(|(prefix, _, _)| model.starts_with(prefix))
        .map(|(_, i, o)| (*i, *o))
}

/// Cost of the billed tokens in `u`, with prices from the config, else the
/// built-in table; `None` when a price is unknown.
fn estimated_cost(ai: &AiConfigSpec, u: &ModelUsage) -> Option<f64> {
    let builtin = builtin_price(&ai.model);
    let input = ai.input_cost_per_mtok.or(builtin.map(|p| p.0))?;
    let output = ai.output_cost_per_mtok.or(builtin.map(|p| p.1))?;
    Some(
        (u.billed_input_tokens as f64 * input + u.billed_output_tokens as f64 * output)
            / 1_000_000.0,
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn endpoints_keep_azure_queries_and_pick_the_key_header() {
        use super::{endpoint_url, is_azure};
        use ai_review_domain::LlmProvider;
        assert_eq!(
            endpoint_url("https://api.openai.com/v1", LlmProvider::OpenAi).as_deref(),
            Some("https://api.openai.com/v1/chat/completions")
        );
        assert_eq!(
            endpoint_url("http://127.0.0.1:11434/v1/", LlmProvider::OpenAi).as_deref(),
            Some("http://127.0.0.1:11434/v1/chat/completions")
        );
        let azure = endpoint_url(
            "https://team.openai.azure.com/openai/deployments/gpt4o?api-version=2024-10-21",
            LlmProvider::OpenAi,
        )
        .expect("azure");
        assert_eq!(
            azure,
            "https://team.openai.azure.com/openai/deployments/gpt4o/chat/completions?api-version=2024-10-21"
        );
        assert!(is_azure(&azure));
        assert!(!is_azure("https://api.openai.com/v1/chat/completions"));
        assert_eq!(
            endpoint_url("https://api.anthropic.com/v1", LlmProvider::Anthropic).as_deref(),
            Some("https://api.anthropic.com/v1/messages")
        );
    }

    use super::*;

    fn ai(provider: LlmProvider, model: &str) -> AiConfigSpec {
        AiConfigSpec {
            id: "c".into(),
            name: "c".into(),
            provider,
            base_url: "http://127.0.0.1:1/v1".into(),
            model: model.into(),
            api_key: None,
            temperature: Some(0.25),
            max_output_tokens: 100,
            max_input_tokens_per_call: 1000,
            timeout_ms: 1000,
            token_budget: 10_000,
            input_cost_per_mtok: None,
            output_cost_per_mtok: None,
        }
    }

    fn msg(role: ChatRole, content: &str) -> ChatMessage {
        ChatMessage {
            role,
            content: content.into(),
        }
    }

    fn req(json: bool) -> ChatRequest {
        ChatRequest {
            messages: vec![
                msg(ChatRole::System, "rules"),
                msg(ChatRole::System, "more rules"),
                msg(ChatRole::User, "diff"),
                msg(ChatRole::Assistant, "{bad"),
                msg(ChatRole::User, "fix it"),
            ],
            max_tokens: Some(50),
            json,
            label: Some("review 1/1".into()),
        }
    }

    #[test]
    fn openai_translation_keeps_roles_and_asks_for_json() {
        let b = openai_body(&ai(LlmProvider::OpenAi, "gpt-4o-mini"), &req(true), 50);
        assert_eq!(b["model"], "gpt-4o-mini");
        assert_eq!(b["max_tokens"], 50);
        assert_eq!(b["temperature"], 0.25);
        assert_eq!(temperature(0.2), json!(0.2));
        assert_eq!(b["response_format"], json!({"type": "json_object"}));
        assert_eq!(
            b["messages"][1],
            json!({"role": "system", "content": "more rules"})
        );
        assert_eq!(b["messages"].as_array().map(Vec::len), Some(5));
        let b = openai_body(&ai(LlmProvider::OpenAi, "o4-mini"), &req(false), 50);
        assert_eq!(b["max_completion_tokens"], 50);
        assert!(b.get("max_tokens").is_none() && b.get("response_format").is_none());
    }

    #[test]
    fn anthropic_translation_lifts_system_messages() {
        let b = anthropic_body(
            &ai(LlmProvider::Anthropic, "claude-sonnet-4-0"),
            &req(true),
            50,
        );
        assert_eq!(b["system"], "rules\n\nmore rules");
        assert_eq!(b["max_tokens"], 50);
        assert_eq!(
            b["messages"],
            json!([
                {"role": "user", "content": "diff"},
                {"role": "assistant", "content": "{bad"},
                {"role": "user", "content": "fix it"},
            ])
        );
        assert!(b.get("response_format").is_none());
    }

    #[test]
    fn answers_parse_from_both_shapes_and_malformed_ones_are_named() {
        let r = parse_openai(&json!({
            "model": "m", "choices": [{"message": {"content": "hi"}, "finish_reason": "length"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 4}
        }))
        .expect("openai");
        assert_eq!(
            (
                r.content.as_str(),
                r.usage.input_tokens,
                r.usage.output_tokens
            ),
            ("hi", 3, 4)
        );
        assert_eq!(r.finish_reason.as_deref(), Some("length"));
        let r = parse_anthropic(&json!({
            "model": "m", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 5, "output_tokens": 6, "cache_read_input_tokens": 10}
        }))
        .expect("anthropic");
        assert_eq!((r.content.as_str(), r.usage.input_tokens), ("ab", 15));
        assert!(parse_openai(&json!({"choices": []})).is_err());
        assert!(
            parse_openai(
                &json!({"choices": [{"message": {"content": null, "refusal": "no"}}], "usage": {}})
            )
            .is_err_and(|e| e.contains("refused"))
        );
        assert!(parse_anthropic(&json!({"content": [], "usage": {}})).is_err());
        assert!(
            parse_anthropic(&json!({"content": [{"type": "text", "text": "x"}], "usage": {"input_tokens": "many"}}))
                .is_err()
        );
    }

    #[test]
    fn cache_keys_depend_on_everything_that_changes_the_answer_but_the_label() {
        let a = ai(LlmProvider::OpenAi, "gpt-4o");
        let r = req(true);
        let k = cache_key("t1", &a, 50, true, &r.messages);
        assert_eq!(k.len(), 64);
        assert_eq!(k, cache_key("t1", &a, 50, true, &r.messages));
        assert_ne!(k, cache_key("t2", &a, 50, true, &r.messages));
        assert_ne!(k, cache_key("t1", &a, 51, true, &r.messages));
        assert_ne!(k, cache_key("t1", &a, 50, false, &r.messages));
        assert_ne!(k, cache_key("t1", &a, 50, true, &r.messages[1..]));
        let other_model = AiConfigSpec {
            model: "gpt-4.1".into(),
            ..a.clone()
        };
        assert_ne!(k, cache_key("t1", &other_model, 50, true, &r.messages));
        let other_temp = AiConfigSpec {
            temperature: None,
            ..a.clone()
        };
        assert_ne!(k, cache_key("t1", &other_temp, 50, true, &r.messages));
        let key_changed = AiConfigSpec {
            api_key: Some(ai_review_domain::SecretString::new("sk-2")),
            ..a
        };
        assert_eq!(k, cache_key("t1", &key_changed, 50, true, &r.messages));
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(30))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let p = RetryPolicy {
            max_retries: 4,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        };
        for _ in 0..50 {
            let d = backoff(0, &p);
            assert!((50..=100).contains(&d.as_millis()), "{d:?}");
            let d = backoff(3, &p);
            assert!((400..=800).contains(&d.as_millis()), "{d:?}");
            assert!(backoff(30, &p) <= Duration::from_secs(1));
        }
    }

    #[test]
    fn costs_come_from_the_config_or_the_table() {
        let u = ModelUsage {
            billed_input_tokens: 1_000_000,
            billed_output_tokens: 500_000,
            input_tokens: 9_000_000,
            ..ModelUsage::default()
        };
        let cost = estimated_cost(&ai(LlmProvider::OpenAi, "gpt-4o-mini-2024-07-18"), &u);
        assert!(cost.is_some_and(|c| (c - 0.45).abs() < 1e-9), "{cost:?}");
        let cost = estimated_cost(&ai(LlmProvider::Anthropic, "claude-sonnet-4-20250514"), &u);
        assert!(cost.is_some_and(|c| (c - 10.5).abs() < 1e-9), "{cost:?}");
        assert_eq!(estimated_cost(&ai(LlmProvider::OpenAi, "llama3"), &u), None);
        let priced = AiConfigSpec {
            input_cost_per_mtok: Some(1.0),
            output_cost_per_mtok: Some(2.0),
            ..ai(LlmProvider::OpenAi, "llama3")
        };
        assert_eq!(estimated_cost(&priced, &u), Some(2.0));
    }

    #[test]
    fn provider_messages_are_extracted_and_cut() {
        assert_eq!(
            provider_message(br#"{"error":{"message":"bad key"}}"#),
            "bad key"
        );
        assert_eq!(provider_message(b""), "no details");
        let long = "x".repeat(1000);
        assert_eq!(
            provider_message(long.as_bytes()).chars().count(),
            MAX_PROVIDER_MESSAGE + 1
        );
    }

    #[tokio::test]
    async fn the_cache_round_trips_drops_corrupt_entries_and_prunes_old_ones() {
        let d = tempfile::tempdir().expect("tempdir");
        let dir = d.path().join(CACHE_DIR);
        assert_eq!(prune_cache(&dir, CACHE_MAX_AGE).await, 0, "missing dir");
        let r = ChatResponse {
            content: "x".into(),
            usage: TokenUsage {
                input_tokens: 1,
                output_tokens: 2,
            },
            cached: false,
            model: "m".into(),
            finish_reason: None,
        };
        write_cache(&dir, "k", &r).await.expect("write");
        assert_eq!(read_cache(&dir, "k").await, Some(r));
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("k.json")), 0o600);
        std::fs::write(dir.join("bad.json"), "{").expect("write");
        assert_eq!(read_cache(&dir, "bad").await, None);
        assert!(
            !dir.join("bad.json").exists(),
            "corrupt entries are dropped"
        );
        assert_eq!(
            prune_cache(&dir, CACHE_MAX_AGE).await,
            0,
            "fresh entries stay"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(prune_cache(&dir, Duration::from_millis(10)).await, 1);
        assert!(!dir.join("k.json").exists());
    }
}
