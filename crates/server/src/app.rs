//! The router and its middleware.
//!
//! Layers, outermost first: request id → trace → plain errors to envelope →
//! body limit → rate limit → handlers. Every `/api` answer, including 404 for
//! unknown routes, 405, 413 and 429, is the JSON envelope.

use crate::clock::DynClock;
use crate::config::Settings;
use crate::error::{ApiError, title_for};
use crate::queue::TaskWake;
use crate::rate_limit::{ClientKey, Limiter, SharedLimit};
use crate::routes;
use ai_review_protocol::Envelope;
use ai_review_store::DynStore;
use axum::body::Body;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use axum::{Json, Router};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::watch;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub store: DynStore,
    /// Validated settings.
    pub settings: Arc<Settings>,
    /// Time source.
    pub clock: DynClock,
    /// Long-poll wake-ups.
    pub wake: Arc<TaskWake>,
    /// Flips to `true` when the server shuts down (ends long-polls early).
    pub shutdown: watch::Receiver<bool>,
    /// Per-client rate limiter, if enabled. In memory, so per replica: it
    /// protects this replica's capacity (see [`crate::rate_limit`]).
    pub limiter: Option<Arc<Limiter>>,
    /// Runner id → owning user. Ownership never changes once registered,
    /// so this cache is always right and saves a read on every heartbeat
    /// and task call.
    pub runner_owners: Arc<
        std::sync::RwLock<
            std::collections::HashMap<ai_review_domain::RunnerId, ai_review_domain::UserId>,
        >,
    >,
    /// HTTP client for forge APIs (pooled, 30 s per request).
    pub forge_http: reqwest::Client,
    /// Login and setup attempts per client IP (password guessing costs an
    /// Argon2 verification each), counted in the store so the limit holds
    /// across replicas: [`SharedLimit::LOGIN`].
    pub login_limiter: SharedLimit,
    /// This server's metrics.
    pub metrics: Arc<ai_review_metrics::Registry>,
}

impl AppState {
    /// State for a server over `store` with `settings`, ending long-polls
    /// when `shutdown` turns `true`.
    pub fn new(
        settings: Settings,
        store: DynStore,
        clock: DynClock,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let limiter = settings.rate_limit.map(|l| Arc::new(Limiter::new(l)));
        Self {
            store,
            settings: Arc::new(settings),
            clock,
            wake: Arc::new(TaskWake::default()),
            shutdown,
            limiter,
            runner_owners: Arc::default(),
            forge_http: ai_review_forge::http_client(std::time::Duration::from_secs(30))
                .unwrap_or_default(),
            metrics: Arc::new(crate::metrics::registry()),
            login_limiter: SharedLimit::LOGIN,
        }
    }
}

/// Builds the router for `state`.
pub fn router(state: AppState) -> Router {
    let body_limit = state.settings.body_limit_bytes;
    let mut api = Router::new()
        .route("/api/health", get(routes::health::health))
        .route("/api/openapi.json", get(crate::openapi::serve))
        .route("/api/me", get(routes::keys::me))
        .route(
            "/api/api-keys",
            get(routes::keys::list).post(routes::keys::create),
        )
        .route("/api/api-keys/{id}", delete(routes::keys::revoke))
        .route("/api/runners", get(routes::runners::list))
        .route("/api/runners/register", post(routes::runners::register))
        .route("/api/runners/tasks/pending", get(routes::runners::pending))
        .route(
            "/api/runners/tasks/{id}/status",
            post(routes::runners::status),
        )
        .route("/api/runners/tasks/{id}/logs", post(routes::runners::logs))
        .route(
            "/api/runners/tasks/{id}/result",
            post(routes::runners::result),
        )
        .route("/api/runners/{id}", get(routes::runners::get_one))
        .route(
            "/api/runners/{id}/heartbeat",
            post(routes::runners::heartbeat),
        )
        .route(
            "/api/reviews",
            get(routes::reviews::list).post(routes::reviews::create),
        )
        .route(
            "/api/reviews/trigger-manual-review",
            post(routes::reviews::trigger_manual),
        )
        .route("/api/reviews/{id}", get(routes::reviews::get_one))
        .route("/api/reviews/{id}/cancel", post(routes::reviews::cancel))
        .route("/api/reviews/{id}/retry", post(routes::reviews::retry))
        .route(
            "/api/users",
            get(routes::users::list).post(routes::users::create),
        )
        .route("/api/users/{id}", patch(routes::users::update))
        .route("/api/reviews/{id}/logs", get(routes::reviews::logs))
        .route("/api/reviews/{id}/comments", get(routes::results::comments))
        .route("/api/reviews/{id}/files", get(routes::results::files))
        .route(
            "/api/reviews/{id}/files/progress",
            get(routes::results::progress),
        )
        .route(
            "/api/ai-configs",
            get(routes::configs::list_ai).post(routes::configs::create_ai),
        )
        .route(
            "/api/ai-configs/{id}",
            get(routes::configs::get_ai)
                .patch(routes::configs::update_ai)
                .delete(routes::configs::delete_ai),
        )
        .route(
            "/api/review-templates",
            get(routes::configs::list_templates).post(routes::configs::create_template),
        )
        .route(
            "/api/review-templates/{id}",
            get(routes::configs::get_template)
                .patch(routes::configs::update_template)
                .delete(routes::configs::delete_template),
        )
        .route(
            "/api/review-rules",
            get(routes::configs::list_rules).post(routes::configs::create_rule),
        )
        .route(
            "/api/review-rules/{id}",
            get(routes::configs::get_rule)
                .patch(routes::configs::update_rule)
                .delete(routes::configs::delete_rule),
        )
        .route(
            "/api/platform-configs",
            get(routes::platforms::list).post(routes::platforms::create),
        )
        .route(
            "/api/platform-configs/enabled",
            get(routes::platforms::enabled),
        )
        .route(
            "/api/platform-configs/default",
            get(routes::platforms::default),
        )
        .route(
            "/api/platform-configs/type/{type}",
            get(routes::platforms::by_type),
        )
        .route(
            "/api/platform-configs/{id}",
            get(routes::platforms::get_one)
                .patch(routes::platforms::update)
                .put(routes::platforms::update)
                .delete(routes::platforms::delete),
        )
        .route(
            "/api/platform-configs/{id}/token",
            get(routes::platforms::token),
        )
        .route("/api/projects", get(routes::projects::list))
        .route("/api/projects/paginated", get(routes::projects::paginated))
        .route("/api/projects/stats", get(routes::projects::stats))
        .route("/api/projects/sync/platform", post(routes::sync::sync))
        .route(
            "/api/projects/{id}",
            get(routes::projects::get_one).patch(routes::projects::update),
        )
        .route("/api/projects/{id}/config", get(routes::projects::config))
        .route(
            "/api/projects/{id}/webhook/check",
            post(routes::projects::check_webhook),
        )
        .route(
            "/api/settings/global",
            get(routes::projects::get_global)
                .put(routes::projects::put_global)
                .patch(routes::projects::put_global),
        )
        .route(
            "/api/notifications/config",
            get(routes::notifications::get_config)
                .put(routes::notifications::put_config)
                .patch(routes::notifications::patch_config),
        )
        .route(
            "/api/notifications/config/test-channel",
            post(routes::notifications::test_channel),
        )
        .route(
            "/api/notifications/config/vapid",
            post(routes::notifications::generate_vapid),
        )
        .route(
            "/api/notifications/push/vapid-public-key",
            get(routes::notifications::vapid_public_key),
        )
        .route(
            "/api/notifications/push/subscriptions",
            get(routes::notifications::list_subscriptions).post(routes::notifications::subscribe),
        )
        .route(
            "/api/notifications/push/subscriptions/{id}",
            axum::routing::delete(routes::notifications::unsubscribe),
        )
        .route(
            "/api/notifications/history",
            get(routes::notifications::history),
        )
        .route(
            "/api/notifications/history/{id}",
            get(routes::notifications::history_one),
        )
        .route(
            "/api/notifications/stats",
            get(routes::notifications::stats),
        )
        .route("/api/webhook/gitlab", post(crate::webhooks::gitlab))
        .route("/api/webhook/github", post(crate::webhooks::github))
        .route("/api/webhook-events", get(crate::webhooks::events))
        .merge(crate::dashboard::router())
        .fallback(not_found);

    if state.settings.metrics_listen.is_none() {
        api = api.route("/metrics", get(metrics_page));
    }
    api.layer(middleware::from_fn_with_state(state.clone(), rate_limit))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(RequestBodyLimitLayer::new(body_limit))
        .layer(middleware::from_fn(plain_errors_to_envelope))
        .layer(middleware::from_fn(security_headers))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .layer(middleware::from_fn(crate::request_id::scope))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let id = req
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-");
            // The path only: a query string may carry a token.
            tracing::info_span!(
                "request",
                request.id = %id,
                http.method = %req.method(),
                http.path = %req.uri().path()
            )
        }))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

async fn not_found(req: Request) -> Response {
    if !req.uri().path().starts_with("/api") {
        return crate::dashboard::PageError::Api(ApiError::not_found(format!(
            "there is no page at {}",
            req.uri().path()
        )))
        .into_response();
    }
    ApiError::not_found(format!(
        "no route for {} {}; see the API reference in the README",
        req.method(),
        req.uri().path()
    ))
    .into_response()
}

/// The dashboard's content security policy: everything from this server
/// only, no inline script or style, no framing, forms post only here.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'";

/// Counts each answer and its latency by method, route template (never
/// the raw path: ids would make a series per review) and status.
async fn count_requests(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().as_str().to_owned();
    let start = std::time::Instant::now();
    let resp = next.run(req).await;
    let elapsed = start.elapsed().as_secs_f64();
    state.metrics.inc(
        "ai_review_http_requests_total",
        vec![
            ("method", method.clone()),
            ("route", route.clone()),
            ("code", resp.status().as_u16().to_string()),
        ],
        1,
    );
    state.metrics.observe(
        "ai_review_http_request_duration_seconds",
        vec![("method", method), ("route", route)],
        elapsed,
    );
    resp
}

/// `GET /metrics`: Prometheus text exposition.
pub async fn metrics_page(State(state): State<AppState>) -> Response {
    match crate::metrics::gauges(&state).await {
        Ok(g) => (
            [(header::CONTENT_TYPE, ai_review_metrics::CONTENT_TYPE)],
            state.metrics.render(&g),
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "metrics: the database did not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the database did not answer; see the server log",
            )
                .into_response()
        }
    }
}

/// Headers on every answer: no MIME sniffing, no framing, no referrer to
/// other sites; on pages also the CSP and `no-store` (a page may show a
/// key once, and must not come back from a shared cache or the back button
/// after logout).
async fn security_headers(req: Request, next: Next) -> Response {
    let page = !req.uri().path().starts_with("/api") && !req.uri().path().starts_with("/assets/");
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if page {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// Rewrites error responses under `/api` that did not come from our
/// handlers (axum's 405, tower-http's 413, timeouts) into the envelope.
/// Dashboard pages keep their HTML errors.
async fn plain_errors_to_envelope(req: Request, next: Next) -> Response {
    let api = req.uri().path().starts_with("/api");
    let resp = next.run(req).await;
    if !api {
        return resp;
    }
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let detail = match status {
        StatusCode::METHOD_NOT_ALLOWED => "this route does not accept that HTTP method".to_owned(),
        StatusCode::PAYLOAD_TOO_LARGE => {
            "the request body is larger than the server accepts (BODY_LIMIT_BYTES)".to_owned()
        }
        other => other.canonical_reason().unwrap_or("error").to_owned(),
    };
    let (mut parts, _) = resp.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let body = Envelope::error(&title_for(status), status.as_u16(), Some(detail));
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    Response::from_parts(parts, Body::from(bytes))
}

/// The TCP peer's address from a request's extensions (0.0.0.0 when
/// unknown, e.g. in router-only tests). Behind a load balancer this is the
/// balancer: per-client limits use [`client_ip`].
pub fn peer_ip_of(extensions: &http::Extensions) -> std::net::IpAddr {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |c| c.0.ip())
}

/// The client's address for rate limits and the login throttle. When the
/// TCP peer is a trusted proxy (`AI_REVIEW_TRUSTED_PROXIES`), the
/// `X-Forwarded-For` list is walked from the right, past addresses that are
/// trusted proxies themselves, to the first one that is not (as nginx's
/// `real_ip_recursive on`); a malformed entry ends the walk at the last
/// good address (the peer, or the last trusted proxy), and so does the end
/// of the list. From an untrusted peer the header is ignored, so a client
/// cannot pick its own address.
pub fn client_ip(
    extensions: &http::Extensions,
    headers: &http::HeaderMap,
    trusted: &crate::config::TrustedProxies,
) -> std::net::IpAddr {
    let peer = peer_ip_of(extensions);
    if !trusted.contains(peer) {
        return peer;
    }
    let mut client = peer;
    // Several header lines are one list, in order (RFC 9110 §5.3).
    let lines: Vec<_> = headers.get_all("x-forwarded-for").iter().collect();
    for line in lines.into_iter().rev() {
        let Ok(line) = line.to_str() else {
            return client;
        };
        for entry in line.rsplit(',') {
            let Ok(ip) = entry.trim().parse::<std::net::IpAddr>() else {
                return client;
            };
            client = ip;
            if !trusted.contains(ip) {
                return ip;
            }
        }
    }
    client
}

async fn rate_limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(limiter) = &state.limiter else {
        return next.run(req).await;
    };
    if req.uri().path() == "/api/health" {
        return next.run(req).await;
    }
    // A request is counted against its API key only when it carries one of
    // the right shape on an API route; anything else (pages, the login form,
    // made-up headers) counts against its IP, so inventing a header does not
    // buy a fresh bucket.
    let credential = req
        .uri()
        .path()
        .starts_with("/api/")
        .then(|| {
            crate::auth::presented_credential(req.headers())
                .ok()
                .flatten()
        })
        .flatten()
        .filter(|raw| ai_review_domain::ApiKeySecret::parse(raw).is_ok());
    let key = match credential {
        Some(raw) => ClientKey::credential(raw),
        None => ClientKey::ip(client_ip(
            req.extensions(),
            req.headers(),
            &state.settings.trusted_proxies,
        )),
    };
    match limiter.check(&key) {
        Ok(()) => next.run(req).await,
        Err(wait) => {
            let secs = wait.as_secs_f64().ceil().max(1.0);
            let mut e = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "rate limit exceeded ({} requests/s, burst {}); retry after {secs:.0} s",
                    state.settings.rate_limit.map_or(0, |r| r.per_second),
                    state.settings.rate_limit.map_or(0, |r| r.burst),
                ),
            );
            if let Ok(v) = HeaderValue::from_str(&format!("{secs:.0}")) {
                e.headers.push((header::RETRY_AFTER, v));
            }
            e.into_response()
        }
    }
}

/// A JSON success answer in the envelope.
pub fn ok<T: serde::Serialize>(data: T) -> Json<Envelope<T>> {
    Json(Envelope::ok(data))
}

#[cfg(test)]
mod tests {
    use super::client_ip;
    use crate::config::TrustedProxies;
    use axum::extract::ConnectInfo;
    use std::net::{IpAddr, SocketAddr};

    /// The client address of a request from `peer` with these
    /// `X-Forwarded-For` lines, trusting `trusted`.
    fn client(trusted: &str, peer: &str, forwarded: &[&str]) -> IpAddr {
        let trusted = TrustedProxies::parse(trusted).expect("trusted proxies");
        let mut ext = http::Extensions::new();
        ext.insert(ConnectInfo(SocketAddr::new(
            peer.parse().expect("peer"),
            40_000,
        )));
        let mut headers = http::HeaderMap::new();
        for line in forwarded {
            headers.append(
                "x-forwarded-for",
                http::HeaderValue::from_str(line).expect("header"),
            );
        }
        client_ip(&ext, &headers, &trusted)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn an_untrusted_peer_cannot_forge_its_address() {
        // Nothing trusted (the default): the header never counts.
        assert_eq!(client("", "10.0.0.5", &["203.0.113.7"]), ip("10.0.0.5"));
        // A peer outside the trusted networks: ignored as well.
        assert_eq!(
            client("10.0.0.0/8", "198.51.100.9", &["203.0.113.7"]),
            ip("198.51.100.9")
        );
        // A trusted peer without the header is the client itself.
        assert_eq!(client("10.0.0.0/8", "10.0.0.5", &[]), ip("10.0.0.5"));
    }

    #[test]
    fn a_trusted_peer_names_the_rightmost_untrusted_address() {
        // The client may prepend anything; only what the proxy appended counts.
        assert_eq!(
            client("10.0.0.0/8", "10.0.0.5", &["1.1.1.1, 203.0.113.7"]),
            ip("203.0.113.7")
        );
        assert_eq!(
            client("10.0.0.0/8", "10.0.0.5", &[" 203.0.113.7 "]),
            ip("203.0.113.7")
        );
    }

    #[test]
    fn a_chain_of_trusted_proxies_is_walked_past() {
        let trusted = "10.0.0.0/8,192.168.1.10";
        assert_eq!(
            client(
                trusted,
                "10.0.0.5",
                &["1.1.1.1, 203.0.113.7, 192.168.1.10, 10.9.9.9"]
            ),
            ip("203.0.113.7")
        );
        // Split over several header lines, in order.
        assert_eq!(
            client(
                trusted,
                "10.0.0.5",
                &["1.1.1.1, 203.0.113.7", "192.168.1.10", "10.9.9.9"]
            ),
            ip("203.0.113.7")
        );
        // Only proxies: the leftmost (last one walked) is the client.
        assert_eq!(
            client(trusted, "10.0.0.5", &["10.1.1.1, 192.168.1.10"]),
            ip("10.1.1.1")
        );
    }

    #[test]
    fn a_malformed_entry_ends_the_walk_at_the_last_trusted_address() {
        let trusted = "10.0.0.0/8";
        for bad in ["unknown", "", "203.0.113.7:443", "[2001:db8::1]", "_hidden"] {
            assert_eq!(
                client(trusted, "10.0.0.5", &[bad]),
                ip("10.0.0.5"),
                "{bad:?} right at the peer"
            );
            assert_eq!(
                client(
                    trusted,
                    "10.0.0.5",
                    &[&format!("203.0.113.7, {bad}, 10.0.0.6")]
                ),
                ip("10.0.0.6"),
                "{bad:?} behind a trusted hop"
            );
        }
        // Entries left of the first untrusted one are never looked at.
        assert_eq!(
            client(trusted, "10.0.0.5", &["garbage, 203.0.113.7"]),
            ip("203.0.113.7")
        );
        // A header that is not text is malformed too.
        let trusted = TrustedProxies::parse("10.0.0.0/8").expect("trusted");
        let mut ext = http::Extensions::new();
        ext.insert(ConnectInfo(SocketAddr::from(([10, 0, 0, 5], 1))));
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            http::HeaderValue::from_bytes(b"203.0.113.\xff").expect("opaque"),
        );
        assert_eq!(client_ip(&ext, &headers, &trusted), ip("10.0.0.5"));
    }

    #[test]
    fn ipv6_proxies_and_clients() {
        let trusted = "fd00::/8,::1";
        assert_eq!(
            client(trusted, "::1", &["2001:db8::7, fd00::2"]),
            ip("2001:db8::7")
        );
        assert_eq!(
            client(trusted, "fd12::1", &["203.0.113.7"]),
            ip("203.0.113.7")
        );
        assert_eq!(
            client(trusted, "2001:db8::9", &["203.0.113.7"]),
            ip("2001:db8::9"),
            "untrusted IPv6 peer"
        );
        // A dual-stack listener reports IPv4 peers as IPv4-mapped IPv6.
        assert_eq!(
            client("10.0.0.0/8", "::ffff:10.0.0.5", &["203.0.113.7"]),
            ip("203.0.113.7")
        );
    }
}
