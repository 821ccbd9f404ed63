//! The HTTP layer shared by the forge implementations: authentication
//! headers, error classification, the retry policy, pagination helpers and
//! path encoding.

use crate::ForgeError;
use ai_review_domain::SecretString;
use rand::Rng;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How failed calls are retried: 429 (after the wait the forge asks for),
/// 5xx and transport errors (with jittered exponential backoff). 401, 403,
/// 404, 400 and 422 are never retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// Backoff before the first retry; doubled for each later one, then
    /// jittered down by up to half.
    pub base_delay: Duration,
    /// The longest wait before a retry. A rate limit that asks for longer
    /// is not waited out: the call fails with
    /// [`ForgeError::RateLimited`] carrying the wait, so the caller can
    /// reschedule instead of holding a worker.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 3,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        Self {
            max_retries: 0,
            ..Self::default()
        }
    }

    /// The backoff before retry number `retry` (0-based) of a 5xx or
    /// transport failure: `base * 2^retry`, capped, then a random part of
    /// up to half removed so clients that failed together do not retry
    /// together.
    pub(crate) fn backoff(&self, retry: u32) -> Duration {
        let full = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(retry))
            .min(self.max_delay);
        let cut = rand::rng().random_range(0.0..0.5);
        full.mul_f64(1.0 - cut)
    }
}

/// How a forge wants its token presented.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AuthStyle {
    /// `PRIVATE-TOKEN: <token>`.
    GitLab,
    /// `Authorization: Bearer <token>` plus GitHub's media type, API version
    /// and a `User-Agent` (GitHub refuses requests without one).
    GitHub,
}

/// An answer with a 2xx status.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

impl Answer {
    pub(crate) fn json<T: DeserializeOwned>(&self, what: &str) -> Result<T, ForgeError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| ForgeError::Malformed(format!("{what}: {e}")))
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// One forge's API root with its token, client and retry policy.
#[derive(Clone)]
pub(crate) struct Api {
    http: reqwest::Client,
    root: String,
    token: SecretString,
    style: AuthStyle,
    retry: RetryPolicy,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("root", &self.root)
            .field("style", &self.style)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

const USER_AGENT: &str = concat!("ai-review/", env!("CARGO_PKG_VERSION"));

impl Api {
    pub(crate) fn new(
        http: reqwest::Client,
        root: String,
        token: SecretString,
        style: AuthStyle,
    ) -> Self {
        Self {
            http,
            root,
            token,
            style,
            retry: RetryPolicy::default(),
        }
    }

    pub(crate) fn set_retry(&mut self, retry: RetryPolicy) {
        self.retry = retry;
    }

    pub(crate) fn root(&self) -> &str {
        &self.root
    }

    pub(crate) fn token(&self) -> &SecretString {
        &self.token
    }

    /// `{root}{path}`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.root)
    }

    fn auth_headers(&self) -> Result<HeaderMap, ForgeError> {
        let mut h = HeaderMap::new();
        let bad_token = || {
            ForgeError::InvalidArgument(
                "the access token contains characters that cannot be sent in an HTTP header".into(),
            )
        };
        match self.style {
            AuthStyle::GitLab => {
                let mut v = HeaderValue::from_str(self.token.expose()).map_err(|_| bad_token())?;
                v.set_sensitive(true);
                h.insert(HeaderName::from_static("private-token"), v);
            }
            AuthStyle::GitHub => {
                let mut v = HeaderValue::from_str(&format!("Bearer {}", self.token.expose()))
                    .map_err(|_| bad_token())?;
                v.set_sensitive(true);
                h.insert(reqwest::header::AUTHORIZATION, v);
                h.insert(
                    reqwest::header::ACCEPT,
                    HeaderValue::from_static("application/vnd.github+json"),
                );
                h.insert(
                    HeaderName::from_static("x-github-api-version"),
                    HeaderValue::from_static("2022-11-28"),
                );
            }
        }
        h.insert(
            reqwest::header::USER_AGENT,
            HeaderValue::from_static(USER_AGENT),
        );
        Ok(h)
    }

    /// Sends `method url` with an optional JSON body, retrying per the
    /// policy; `Ok` only for a 2xx answer.
    pub(crate) async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<Answer, ForgeError> {
        let headers = self.auth_headers()?;
        let mut retry = 0u32;
        loop {
            let mut req = self
                .http
                .request(method.clone(), url)
                .headers(headers.clone());
            if let Some(b) = body {
                req = req.json(b);
            }
            let err = match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let resp_headers = resp.headers().clone();
                    match resp.bytes().await {
                        Ok(bytes) if status.is_success() => {
                            return Ok(Answer {
                                headers: resp_headers,
                                body: bytes.to_vec(),
                            });
                        }
                        Ok(bytes) => classify(status, &resp_headers, &bytes, now_epoch()),
                        // The forge has answered, so it has acted: a POST
                        // must not be sent again.
                        Err(e) if method == Method::POST => return Err(transport_error(&e)),
                        Err(e) => transport_error(&e),
                    }
                }
                Err(e) => {
                    // A POST that may have reached the forge (a timeout, a
                    // connection cut after sending) could be applied twice
                    // if retried: only retry it when it never left.
                    if method == Method::POST && !e.is_connect() {
                        return Err(transport_error(&e));
                    }
                    transport_error(&e)
                }
            };
            let wait = match &err {
                ForgeError::RateLimited { retry_after, .. } => match retry_after {
                    Some(d) if *d > self.retry.max_delay => return Err(err),
                    Some(d) => *d,
                    None => self.retry.backoff(retry),
                },
                ForgeError::Server { .. } | ForgeError::Transport(_) => self.retry.backoff(retry),
                _ => return Err(err),
            };
            if retry >= self.retry.max_retries {
                return Err(err);
            }
            retry += 1;
            tracing::debug!(
                %method,
                path = url.strip_prefix(&self.root).unwrap_or(url),
                retry,
                wait_ms = wait.as_millis() as u64,
                error = %err,
                "forge call failed, retrying"
            );
            tokio::time::sleep(wait).await;
        }
    }

    pub(crate) async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ForgeError> {
        self.send(Method::GET, &self.url(path), None)
            .await?
            .json(path)
    }

    pub(crate) async fn send_json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &Value,
    ) -> Result<T, ForgeError> {
        self.send(method, &self.url(path), Some(body))
            .await?
            .json(path)
    }
}

fn transport_error(e: &reqwest::Error) -> ForgeError {
    // reqwest's messages name the URL (no credentials: tokens travel in
    // headers only) and the causes, which is what an operator needs.
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    ForgeError::Transport(msg)
}

fn now_epoch() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The forge's own explanation from an error body: GitLab's `message`
/// (a string, or an object of field errors) or `error`, GitHub's `message`
/// with its `errors`; the raw text otherwise. Bounded in length.
pub(crate) fn forge_message(body: &[u8]) -> String {
    let text = match serde_json::from_slice::<Value>(body) {
        Ok(v) => {
            let mut parts = Vec::new();
            match v.get("message") {
                Some(Value::String(s)) => parts.push(s.clone()),
                Some(other @ (Value::Object(_) | Value::Array(_))) => parts.push(other.to_string()),
                _ => {}
            }
            if let Some(Value::String(s)) = v.get("error") {
                parts.push(s.clone());
            }
            if let Some(Value::Array(errors)) = v.get("errors") {
                for e in errors {
                    match e {
                        Value::String(s) => parts.push(s.clone()),
                        Value::Object(o) => match o.get("message") {
                            Some(Value::String(s)) => parts.push(s.clone()),
                            _ => parts.push(e.to_string()),
                        },
                        _ => {}
                    }
                }
            }
            if parts.is_empty() {
                v.to_string()
            } else {
                parts.join("; ")
            }
        }
        Err(_) => String::from_utf8_lossy(body).trim().to_owned(),
    };
    truncate(&text, 500)
}

pub(crate) fn truncate(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

/// How long a rate-limited answer asks us to wait: `Retry-After` in
/// seconds, else GitHub's `x-ratelimit-reset` (epoch seconds) when
/// `x-ratelimit-remaining` is 0.
fn rate_limit_wait(h: &HeaderMap, now_epoch: u64) -> Option<Duration> {
    if let Some(secs) = header(h, "retry-after").and_then(|v| v.parse::<u64>().ok()) {
        return Some(Duration::from_secs(secs));
    }
    if header(h, "x-ratelimit-remaining") == Some("0") {
        let reset = header(h, "x-ratelimit-reset")?.parse::<u64>().ok()?;
        return Some(Duration::from_secs(reset.saturating_sub(now_epoch)));
    }
    None
}

/// Maps a non-2xx answer to its error.
pub(crate) fn classify(status: StatusCode, h: &HeaderMap, body: &[u8], now: u64) -> ForgeError {
    let message = forge_message(body);
    let code = status.as_u16();
    match code {
        401 => ForgeError::Unauthorized { message },
        403 => {
            // GitHub signals both its primary limit (remaining 0) and its
            // secondary limits ("You have exceeded a secondary rate limit")
            // with 403, not 429.
            let lower = message.to_ascii_lowercase();
            if header(h, "x-ratelimit-remaining") == Some("0")
                || lower.contains("secondary rate limit")
                || lower.contains("rate limit exceeded")
                || header(h, "retry-after").is_some()
            {
                ForgeError::RateLimited {
                    retry_after: rate_limit_wait(h, now),
                    message,
                }
            } else {
                ForgeError::Forbidden { message }
            }
        }
        404 | 410 => ForgeError::NotFound { message },
        429 => ForgeError::RateLimited {
            retry_after: rate_limit_wait(h, now),
            message,
        },
        500..=599 => ForgeError::Server {
            status: code,
            message,
        },
        _ => ForgeError::Unprocessable {
            status: code,
            message,
        },
    }
}

/// The `rel="next"` target of an RFC 8288 `Link` header.
pub(crate) fn next_link(link: &str) -> Option<String> {
    for part in link.split(',') {
        let part = part.trim();
        let (target, params) = part.strip_prefix('<')?.split_once('>')?;
        let is_next = params.split(';').any(|p| {
            p.trim()
                .strip_prefix("rel=")
                .map(|v| v.trim_matches('"').split_whitespace().any(|r| r == "next"))
                .unwrap_or(false)
        });
        if is_next {
            return Some(target.to_owned());
        }
    }
    None
}

/// Percent-encodes one path segment: everything but RFC 3986 unreserved
/// characters, so a GitLab path `group/sub/name` becomes one segment.
pub(crate) fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Normalises a configured base URL: must be http(s) with a host; no
/// credentials, query or fragment; trailing slashes removed.
pub(crate) fn parse_base_url(base: &str) -> Result<url::Url, ForgeError> {
    let bad = |why: &str| ForgeError::InvalidArgument(format!("base URL {base:?} {why}"));
    let u = url::Url::parse(base.trim()).map_err(|e| bad(&format!("is not a URL ({e})")))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(bad("must use http or https"));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(bad("has no host"));
    }
    if !u.username().is_empty() || u.password().is_some() {
        // Not echoed: the URL itself holds a secret.
        return Err(ForgeError::InvalidArgument(
            "the base URL must not contain credentials; set the access token instead".into(),
        ));
    }
    if u.query().is_some() || u.fragment().is_some() {
        return Err(bad("must not have a query or fragment"));
    }
    Ok(u)
}

/// `url` without trailing slashes, as a string.
pub(crate) fn trimmed(u: &url::Url) -> String {
    u.as_str().trim_end_matches('/').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                HeaderName::from_static(k),
                HeaderValue::from_str(v).expect("header"),
            );
        }
        h
    }

    #[test]
    fn classifies_statuses() {
        let none = HeaderMap::new();
        let c = |s: u16, body: &str| {
            classify(
                StatusCode::from_u16(s).expect("status"),
                &none,
                body.as_bytes(),
                0,
            )
        };
        assert!(matches!(c(401, "{\"message\":\"401 Unauthorized\"}"),
            ForgeError::Unauthorized { message } if message == "401 Unauthorized"));
        assert!(matches!(
            c(
                403,
                "{\"message\":\"Resource not accessible by integration\"}"
            ),
            ForgeError::Forbidden { .. }
        ));
        assert!(matches!(
            c(404, "{\"message\":\"404 Not found\"}"),
            ForgeError::NotFound { .. }
        ));
        assert!(matches!(
            c(422, "{\"message\":\"Validation Failed\",\"errors\":[{\"message\":\"line must be part of the diff\"}]}"),
            ForgeError::Unprocessable { status: 422, message } if message == "Validation Failed; line must be part of the diff"
        ));
        assert!(matches!(
            c(400, "{\"message\":{\"note\":[\"can't be blank\"]}}"),
            ForgeError::Unprocessable { status: 400, message } if message.contains("can't be blank")
        ));
        assert!(matches!(
            c(409, "plain text"),
            ForgeError::Unprocessable { status: 409, message } if message == "plain text"
        ));
        assert!(matches!(c(503, ""), ForgeError::Server { status: 503, .. }));
        assert!(matches!(
            c(429, "{}"),
            ForgeError::RateLimited {
                retry_after: None,
                ..
            }
        ));
    }

    #[test]
    fn reads_rate_limit_waits() {
        let h = headers(&[("retry-after", "12")]);
        assert!(matches!(
            classify(StatusCode::TOO_MANY_REQUESTS, &h, b"", 0),
            ForgeError::RateLimited { retry_after: Some(d), .. } if d == Duration::from_secs(12)
        ));
        // GitHub primary limit: 403 with remaining 0 and a reset epoch.
        let h = headers(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "1000030"),
        ]);
        assert!(matches!(
            classify(StatusCode::FORBIDDEN, &h, b"{\"message\":\"API rate limit exceeded\"}", 1_000_000),
            ForgeError::RateLimited { retry_after: Some(d), .. } if d == Duration::from_secs(30)
        ));
        // A reset in the past means "now".
        assert!(matches!(
            classify(StatusCode::TOO_MANY_REQUESTS, &h, b"", 2_000_000),
            ForgeError::RateLimited { retry_after: Some(d), .. } if d == Duration::ZERO
        ));
        // GitHub secondary limit: 403 saying so, no headers.
        assert!(matches!(
            classify(
                StatusCode::FORBIDDEN,
                &HeaderMap::new(),
                b"{\"message\":\"You have exceeded a secondary rate limit. Please wait a few minutes before you try again.\"}",
                0
            ),
            ForgeError::RateLimited {
                retry_after: None,
                ..
            }
        ));
        // Remaining quota left: a 403 is a real refusal.
        let h = headers(&[("x-ratelimit-remaining", "4999")]);
        assert!(matches!(
            classify(
                StatusCode::FORBIDDEN,
                &h,
                b"{\"message\":\"Must have admin rights to Repository.\"}",
                0
            ),
            ForgeError::Forbidden { .. }
        ));
    }

    #[test]
    fn backoff_grows_is_jittered_and_capped() {
        let p = RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(300),
        };
        for _ in 0..50 {
            let d0 = p.backoff(0);
            assert!(d0 > Duration::from_millis(50) && d0 <= Duration::from_millis(100));
            let d1 = p.backoff(1);
            assert!(d1 > Duration::from_millis(100) && d1 <= Duration::from_millis(200));
            let d5 = p.backoff(5);
            assert!(d5 > Duration::from_millis(150) && d5 <= Duration::from_millis(300));
        }
        assert!(p.backoff(u32::MAX) <= p.max_delay);
    }

    #[test]
    fn parses_link_headers() {
        let link = "<https://api.github.com/user/repos?per_page=100&page=2>; rel=\"next\", <https://api.github.com/user/repos?per_page=100&page=5>; rel=\"last\"";
        assert_eq!(
            next_link(link).as_deref(),
            Some("https://api.github.com/user/repos?per_page=100&page=2")
        );
        let last = "<https://api.github.com/user/repos?page=4>; rel=\"prev\", <https://api.github.com/user/repos?page=1>; rel=\"first\"";
        assert_eq!(next_link(last), None);
        assert_eq!(next_link(""), None);
    }

    #[test]
    fn encodes_path_segments() {
        assert_eq!(
            encode_segment("group/sub/my.project"),
            "group%2Fsub%2Fmy.project"
        );
        assert_eq!(encode_segment("a b+c"), "a%20b%2Bc");
        assert_eq!(encode_segment("42"), "42");
    }

    #[test]
    fn forge_messages_are_bounded() {
        let long = "x".repeat(2000);
        let m = forge_message(long.as_bytes());
        assert_eq!(m.chars().count(), 501);
        assert_eq!(
            forge_message(b"{\"error\":\"invalid_token\"}"),
            "invalid_token"
        );
    }

    #[test]
    fn base_urls_are_checked() {
        assert!(parse_base_url("https://gitlab.example.com/").is_ok());
        for bad in [
            "ftp://x",
            "not a url",
            "https://user:pw@gitlab.example.com",
            "https://x/?a=b",
        ] {
            assert!(
                matches!(parse_base_url(bad), Err(ForgeError::InvalidArgument(_))),
                "{bad}"
            );
        }
        let e = parse_base_url("https://user:pw@gitlab.example.com")
            .expect_err("credentials")
            .to_string();
        assert!(e.contains("credentials") && !e.contains("pw"), "{e}");
    }

    #[test]
    fn debug_never_shows_the_token() {
        ai_review_protocol::client::ensure_crypto_provider();
        let api = Api::new(
            reqwest::Client::new(),
            "https://gitlab.example.com/api/v4".into(),
            SecretString::new("glpat-very-secret"),
            AuthStyle::GitLab,
        );
        let dbg = format!("{api:?}");
        assert!(!dbg.contains("glpat-very-secret"), "{dbg}");
        let h = api.auth_headers().expect("headers");
        assert!(h["private-token"].is_sensitive());
        assert!(!format!("{h:?}").contains("glpat-very-secret"));
    }
}
