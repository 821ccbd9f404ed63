//! The one handler: records the request, serves a queued failure if one
//! matches, then hands it to smart HTTP, GitLab or GitHub.

use crate::{Failure, Forge, RecordedRequest, Shared, git, github, gitlab};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const BODY_LIMIT: usize = 32 * 1024 * 1024;

/// A REST request, read and recorded.
pub(crate) struct Req {
    pub method: String,
    pub path: String,
    /// Path segments after the API prefix, percent-decoded.
    pub segments: Vec<String>,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub json: Option<Value>,
}

impl Req {
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn segs(&self) -> Vec<&str> {
        self.segments.iter().map(String::as_str).collect()
    }
}

pub(crate) async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let path = uri.path().to_owned();
    let raw_query = uri.query().unwrap_or("").to_owned();
    let mut parts = path.trim_start_matches('/').split('/');
    let forge = match parts.next() {
        Some("gitlab") => Some(Forge::GitLab),
        Some("github") => Some(Forge::GitHub),
        _ => None,
    };
    let rest: Vec<&str> = parts.collect();
    let git_target = forge.and_then(|_| git_route(&rest));
    let (bytes, git_body) = if git_target.is_some() {
        (Bytes::new(), Some(body))
    } else {
        match axum::body::to_bytes(body, BODY_LIMIT).await {
            Ok(b) => (b, None),
            Err(_) => return (StatusCode::PAYLOAD_TOO_LARGE, "body too large").into_response(),
        }
    };
    let json: Option<Value> = serde_json::from_slice(&bytes).ok();
    let seq = {
        let mut state = shared.state();
        let seq = u64::try_from(state.requests.len()).unwrap_or(u64::MAX) + 1;
        state.requests.push(RecordedRequest {
            seq,
            forge,
            git: git_target.is_some(),
            method: method.to_string(),
            path: path.clone(),
            query: raw_query.clone(),
            headers: headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: String::from_utf8_lossy(&bytes).into_owned(),
            json: json.clone(),
            received_at: SystemTime::now(),
            status: None,
        });
        seq
    };
    shared.changed.notify_waiters();
    let response = answer(
        &shared,
        forge,
        &rest,
        git_target,
        git_body,
        Req {
            method: method.to_string(),
            path: path.clone(),
            segments: Vec::new(),
            query: url::form_urlencoded::parse(raw_query.as_bytes())
                .into_owned()
                .collect(),
            headers,
            json,
        },
        &raw_query,
    )
    .await;
    if let Some(r) = shared.state().requests.iter_mut().find(|r| r.seq == seq) {
        r.status = Some(response.status().as_u16());
    }
    shared.changed.notify_waiters();
    response
}

async fn answer(
    shared: &Arc<Shared>,
    forge: Option<Forge>,
    rest: &[&str],
    git_target: Option<(String, String)>,
    git_body: Option<Body>,
    mut req: Req,
    raw_query: &str,
) -> Response {
    let Some(forge) = forge else {
        return (StatusCode::NOT_FOUND, "not a forge path").into_response();
    };
    let fault = {
        let mut state = shared.state();
        let at = state
            .faults
            .iter()
            .position(|f| f.matches(&req.method, &req.path));
        at.and_then(|i| state.faults.remove(i))
    };
    if let Some(fault) = fault {
        let mut down = shared.shutdown.clone();
        match fault.failure {
            Failure::Delay(d) => {
                tokio::select! {
                    _ = tokio::time::sleep(d) => {}
                    _ = down.wait_for(|v| *v) => return shutting_down(),
                }
            }
            Failure::Hang => {
                let _ = down.wait_for(|v| *v).await;
                return shutting_down();
            }
            other => return failure(forge, &other),
        }
    }
    if let (Some((repo, service)), Some(body)) = (git_target, git_body) {
        return smart_http(shared, forge, &repo, &service, &req, raw_query, body).await;
    }
    let api: &[&str] = match forge {
        Forge::GitLab => &["api", "v4"],
        Forge::GitHub => &["api", "v3"],
    };
    if !rest.starts_with(api) {
        return error(forge, StatusCode::NOT_FOUND, "404 Not Found");
    }
    req.segments = rest[api.len()..]
        .iter()
        .map(|s| percent_decode(s))
        .collect();
    match forge {
        Forge::GitLab => gitlab::route(shared, &req).await,
        Forge::GitHub => github::route(shared, &req).await,
    }
}

fn shutting_down() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "the fake forge is shutting down",
    )
        .into_response()
}

/// `(repository path, service suffix)` of a smart-HTTP path, `.git`
/// optional as on both forges.
fn git_route(rest: &[&str]) -> Option<(String, String)> {
    let suffix_len = match rest {
        [.., "info", "refs"] => 2,
        [.., "git-upload-pack"] | [.., "git-receive-pack"] => 1,
        _ => return None,
    };
    let repo = rest[..rest.len() - suffix_len].join("/");
    let repo = repo.strip_suffix(".git").unwrap_or(&repo).to_owned();
    if repo.is_empty() || rest.first() == Some(&"api") {
        return None;
    }
    Some((repo, rest[rest.len() - suffix_len..].join("/")))
}

async fn smart_http(
    shared: &Arc<Shared>,
    forge: Forge,
    repo: &str,
    service: &str,
    req: &Req,
    raw_query: &str,
    body: Body,
) -> Response {
    let (user, token, realm) = match forge {
        Forge::GitLab => ("oauth2", shared.gitlab_token.as_str(), "GitLab"),
        Forge::GitHub => ("x-access-token", shared.github_token.as_str(), "GitHub"),
    };
    let authorized = req
        .header("authorization")
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .is_some_and(|pair| pair == format!("{user}:{token}"));
    if !authorized {
        let mut r = (StatusCode::UNAUTHORIZED, "HTTP Basic: Access denied\n").into_response();
        if let Ok(v) = HeaderValue::from_str(&format!("Basic realm=\"{realm}\"")) {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        return r;
    }
    if shared.state().repo(forge, repo).is_none() {
        return (StatusCode::NOT_FOUND, "Repository not found\n").into_response();
    }
    let root = shared.root.join(forge.prefix());
    git::http_backend(
        git::CgiRequest {
            project_root: &root,
            path_info: format!("/{repo}.git/{service}"),
            method: &req.method,
            query: raw_query,
            headers: &req.headers,
            remote_user: user,
        },
        body,
    )
    .await
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(h) = bytes.get(i + 1..i + 3)
            && let Ok(h) = std::str::from_utf8(h)
            && let Ok(b) = u8::from_str_radix(h, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A JSON answer.
pub(crate) fn json(status: StatusCode, value: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

/// The forge's error shape.
pub(crate) fn error(forge: Forge, status: StatusCode, message: &str) -> Response {
    let body = match forge {
        Forge::GitLab => serde_json::json!({"message": message}),
        Forge::GitHub => serde_json::json!({
            "message": message,
            "documentation_url": "https://docs.github.com/rest",
            "status": status.as_u16().to_string(),
        }),
    };
    json(status, &body)
}

fn failure(forge: Forge, f: &Failure) -> Response {
    let code = |s: u16| StatusCode::from_u16(s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let message = |s: StatusCode| match forge {
        Forge::GitLab => format!("{} {}", s.as_u16(), s.canonical_reason().unwrap_or("Error")),
        Forge::GitHub => s.canonical_reason().unwrap_or("Error").to_owned(),
    };
    match f {
        Failure::Status(s) => {
            let s = code(*s);
            error(forge, s, &message(s))
        }
        Failure::RetryAfter(secs) => {
            let mut r = match forge {
                // GitLab's throttle answers in plain text.
                Forge::GitLab => (StatusCode::TOO_MANY_REQUESTS, "Retry later\n").into_response(),
                Forge::GitHub => error(
                    forge,
                    StatusCode::TOO_MANY_REQUESTS,
                    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
                ),
            };
            let h = r.headers_mut();
            insert(h, "retry-after", &secs.to_string());
            if forge == Forge::GitLab {
                insert(h, "ratelimit-limit", "600");
                insert(h, "ratelimit-remaining", "0");
                insert(h, "ratelimit-reset", &(epoch() + secs).to_string());
            }
            r
        }
        Failure::RateLimitReset {
            status,
            reset_in_secs,
        } => {
            let mut r = error(
                forge,
                code(*status),
                "API rate limit exceeded for user ID 1. If you reach out to GitHub Support for help, please include the request ID.",
            );
            let h = r.headers_mut();
            insert(h, "x-ratelimit-limit", "5000");
            insert(h, "x-ratelimit-remaining", "0");
            insert(h, "x-ratelimit-used", "5000");
            insert(h, "x-ratelimit-resource", "core");
            insert(
                h,
                "x-ratelimit-reset",
                &(epoch() + reset_in_secs).to_string(),
            );
            r
        }
        Failure::Delay(_) | Failure::Hang => shutting_down(),
    }
}

pub(crate) fn insert(h: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(name, v);
    }
}

fn epoch() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

/// Page and page size of a list request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Paging {
    pub page: usize,
    pub per_page: usize,
}

impl Paging {
    /// Reads `page` and `per_page` (`per_page` capped at `max`, as both
    /// forges do); the error names the invalid parameter.
    pub fn read(req: &Req, default: usize, max: usize) -> Result<Self, String> {
        let number = |name: &str, fallback: usize| match req.query(name) {
            None | Some("") => Ok(fallback),
            Some(v) => v.parse::<usize>().map_err(|_| format!("{name} is invalid")),
        };
        Ok(Self {
            page: number("page", 1)?.max(1),
            per_page: number("per_page", default)?.clamp(1, max),
        })
    }

    pub fn total_pages(self, total: usize) -> usize {
        total.div_ceil(self.per_page).max(1)
    }

    pub fn slice<T: Clone>(self, items: &[T]) -> Vec<T> {
        items
            .iter()
            .skip((self.page - 1).saturating_mul(self.per_page))
            .take(self.per_page)
            .cloned()
            .collect()
    }

    /// The `Link` header: `rel` `prev`/`next` where they exist, and
    /// `first`/`last`; GitHub (`always_bounds == false`) omits `first` on
    /// the first page and `last` on the last.
    pub fn link(self, shared: &Shared, req: &Req, total: usize, always_bounds: bool) -> String {
        let last = self.total_pages(total);
        let mut rels = Vec::new();
        if self.page > 1 {
            rels.push((self.page - 1, "prev"));
        }
        if self.page < last {
            rels.push((self.page + 1, "next"));
        }
        if always_bounds || self.page > 1 {
            rels.push((1, "first"));
        }
        if always_bounds || self.page < last {
            rels.push((last, "last"));
        }
        rels.iter()
            .map(|(page, rel)| format!("<{}>; rel=\"{rel}\"", page_url(shared, req, *page)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn page_url(shared: &Shared, req: &Req, page: usize) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    let mut has_page = false;
    for (k, v) in &req.query {
        if k == "page" {
            has_page = true;
            query.append_pair(k, &page.to_string());
        } else {
            query.append_pair(k, v);
        }
    }
    if !has_page {
        query.append_pair("page", &page.to_string());
    }
    format!("{}{}?{}", shared.base_url, req.path, query.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_routes_take_the_repository_before_the_service() {
        assert_eq!(
            git_route(&["acme", "sub", "app.git", "info", "refs"]),
            Some(("acme/sub/app".into(), "info/refs".into()))
        );
        assert_eq!(
            git_route(&["acme", "app", "git-upload-pack"]),
            Some(("acme/app".into(), "git-upload-pack".into()))
        );
        assert_eq!(git_route(&["api", "v4", "info", "refs"]), None);
        assert_eq!(git_route(&["info", "refs"]), None);
        assert_eq!(git_route(&["acme", "app.git"]), None);
    }

    #[test]
    fn percent_decoding_keeps_what_is_not_an_escape() {
        assert_eq!(percent_decode("acme%2Fapp"), "acme/app");
        assert_eq!(percent_decode("a%2fb%zz%"), "a/b%zz%");
    }
}
