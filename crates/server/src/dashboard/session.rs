//! Logging in and out, and the one-time setup of the first admin.
//!
//! The login and setup forms exist before any session, so they carry a
//! double-submit token instead: a random value set as a `SameSite=Strict`,
//! `HttpOnly` cookie when the form is shown and repeated in the form; a
//! submission whose two copies differ (another site cannot read or set the
//! cookie) or that the browser marks cross-site is refused.

use super::layout::{self, bare};
use super::{NoFields, PageError, PageResult, Posted, see_other};
use crate::app::AppState;
use crate::auth::{SESSION_COOKIE, is_cross_site, session_cookie};
use crate::config::{SessionSettings, millis};
use crate::error::ApiError;
use crate::passwords::{hash_password, hash_password_async, verify_password_async};
use ai_review_domain::{Email, Role, SessionSecret, UserId};
use ai_review_store::{NewSession, NewUser, User};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use std::sync::OnceLock;
use subtle::ConstantTimeEq;

/// The session cookie's `Max-Age`: 400 days, the most browsers keep.
const COOKIE_MAX_AGE_S: u64 = 400 * 86_400;

/// The pre-session anti-forgery cookie of the login and setup forms.
const FORM_COOKIE: &str = "ai_review_form";

fn cookie(
    settings: &SessionSettings,
    name: &str,
    value: &str,
    max_age_s: u64,
    strict: bool,
) -> HeaderValue {
    let same_site = if strict || settings.same_site_strict {
        "Strict"
    } else {
        "Lax"
    };
    let secure = if settings.secure { "; Secure" } else { "" };
    let v = format!(
        "{name}={value}; Path=/; HttpOnly; SameSite={same_site}; Max-Age={max_age_s}{secure}"
    );
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A fresh form token and the cookie that pairs with it.
fn form_token(state: &AppState) -> (String, HeaderValue) {
    let t = SessionSecret::generate().expose().to_owned();
    let c = cookie(&state.settings.session, FORM_COOKIE, &t, 3600, true);
    (t, c)
}

fn check_form_token(headers: &HeaderMap, submitted: &str) -> Result<(), PageError> {
    if is_cross_site(headers) {
        return Err(ApiError::forbidden(
            "cross-site form submission refused: open the page on this server and submit it there",
        )
        .into());
    }
    let ok = crate::auth::cookie_value(headers, FORM_COOKIE)
        .is_some_and(|c| !c.is_empty() && bool::from(c.as_bytes().ct_eq(submitted.as_bytes())));
    if ok {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "the form's security token is missing or does not match (a cross-site submission, or cookies are blocked): reload the page and try again",
        )
        .into())
    }
}

/// The client's IP address, for the login throttle: the TCP peer, or the
/// address a trusted proxy reports ([`crate::app::client_ip`]).
#[derive(Debug, Clone, Copy)]
pub struct ConnectInfoIp(pub std::net::IpAddr);

impl axum::extract::FromRequestParts<AppState> for ConnectInfoIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(crate::app::client_ip(
            &parts.extensions,
            &parts.headers,
            &state.settings.trusted_proxies,
        )))
    }
}

/// 429 when this IP tried to log in (or set up) too often, counted across
/// every replica sharing the store; `Retry-After` is the time until the
/// window ends, in whole seconds rounded up.
async fn throttle(state: &AppState, ip: std::net::IpAddr) -> Result<(), PageError> {
    let verdict = state
        .login_limiter
        .check(
            state.store.as_ref(),
            &crate::rate_limit::ClientKey::ip(ip),
            state.clock.now(),
        )
        .await?;
    match verdict {
        Ok(()) => Ok(()),
        Err(wait) => {
            tracing::warn!(client.ip = %ip, "login attempts throttled");
            let secs = wait.as_millis().div_ceil(1000).max(1);
            let mut e = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!("too many login attempts from your address; try again in {secs} s"),
            );
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                e.headers.push((header::RETRY_AFTER, v));
            }
            Err(e.into())
        }
    }
}

/// Only same-site paths are followed after login (no open redirect): a
/// path that resolves against this server to this server, with no control
/// characters or whitespace (browsers drop tabs and newlines from URLs, so
/// `/\t/evil.example` would become `//evil.example`).
pub fn safe_next(next: Option<&str>) -> String {
    let base = url::Url::parse("http://this.invalid/").ok();
    match (next, base) {
        (Some(n), Some(base))
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.chars().any(|c| c.is_control() || c.is_whitespace())
                && base
                    .join(n)
                    .is_ok_and(|u| u.host_str() == Some("this.invalid")) =>
        {
            n.to_owned()
        }
        _ => "/".to_owned(),
    }
}

/// Query of `GET /login`.
#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

fn login_form(token: &str, next: &str, email: &str, error: Option<&str>) -> Markup {
    bare(
        "Log in",
        html! {
            (layout::notice(None, error))
            form.stack method="post" action="/login" {
                input type="hidden" name="_form" value=(token);
                input type="hidden" name="next" value=(next);
                label for="email" { "Email" input #email type="email" name="email" value=(email) required autocomplete="username" autofocus; }
                label for="password" { "Password" input #password type="password" name="password" required autocomplete="current-password"; }
                button type="submit" { "Log in" }
            }
            p.muted { "No account? An admin creates accounts under Settings → Users." }
        },
    )
}

/// `GET /login`.
pub async fn login_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> PageResult<Response> {
    let next = safe_next(q.next.as_deref());
    if let Some(s) = session_cookie(&headers)
        && crate::auth::live_session(&state, &s).await?.is_some()
    {
        return Ok(see_other(&next));
    }
    if state.store.count_admins().await? == 0 {
        return Ok(see_other("/setup"));
    }
    let (token, c) = form_token(&state);
    Ok((
        [(header::SET_COOKIE, c)],
        login_form(&token, &next, "", None),
    )
        .into_response())
}

/// The login form.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(rename = "_form", default)]
    form: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
}

/// A hash to verify against when the email is unknown, so a wrong email
/// costs as long as a wrong password and does not reveal who has an account.
fn dummy_hash() -> &'static str {
    static H: OnceLock<String> = OnceLock::new();
    H.get_or_init(|| hash_password("not a real password, only for timing").unwrap_or_default())
}

/// `POST /login`.
pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    ConnectInfoIp(ip): ConnectInfoIp,
    axum::Form(f): axum::Form<LoginForm>,
) -> PageResult<Response> {
    throttle(&state, ip).await?;
    check_form_token(&headers, &f.form)?;
    let next = safe_next(f.next.as_deref());
    let user = match Email::parse(f.email.trim()) {
        Ok(e) => state.store.user_by_email(&e).await?,
        Err(_) => None,
    };
    let password = f.password.clone();
    let phc = user
        .as_ref()
        .map_or_else(|| dummy_hash().to_owned(), |u| u.password_hash.clone());
    let verified = verify_password_async(password, phc).await;
    match user {
        Some(u) if verified && !u.disabled => {
            tracing::info!(user.id = %u.id, "dashboard login");
            start_session(&state, &u, &next).await
        }
        _ => {
            tracing::info!("dashboard login refused");
            let (token, c) = form_token(&state);
            Ok((
                StatusCode::UNAUTHORIZED,
                [(header::SET_COOKIE, c)],
                login_form(
                    &token,
                    &next,
                    &f.email,
                    Some("Wrong email or password, or the account is disabled."),
                ),
            )
                .into_response())
        }
    }
}

async fn start_session(state: &AppState, user: &User, next: &str) -> PageResult<Response> {
    let secret = SessionSecret::generate();
    let now = state.clock.now();
    let first_expiry = state
        .settings
        .session
        .idle
        .min(state.settings.session.max_lifetime);
    state
        .store
        .create_session(NewSession {
            digest: secret.digest(),
            user_id: user.id.clone(),
            now,
            expires_at: now.plus_millis(millis(first_expiry)),
        })
        .await?;
    // The browser keeps the cookie for its longest allowed lifetime; the
    // server's sliding idle expiry decides when the session ends (a cookie
    // Max-Age set once at login could not slide with use).
    let c = cookie(
        &state.settings.session,
        SESSION_COOKIE,
        secret.expose(),
        COOKIE_MAX_AGE_S,
        false,
    );
    let clear_form = cookie(&state.settings.session, FORM_COOKIE, "", 0, true);
    let mut resp = see_other(next);
    resp.headers_mut().append(header::SET_COOKIE, c);
    resp.headers_mut().append(header::SET_COOKIE, clear_form);
    Ok(resp)
}

/// `POST /logout`: ends the session and clears the cookie.
pub async fn logout(
    State(state): State<AppState>,
    posted: Posted<NoFields>,
) -> PageResult<Response> {
    state
        .store
        .delete_session(&posted.viewer.session.digest())
        .await?;
    tracing::info!(user.id = %posted.viewer.user.id, "dashboard logout");
    let mut resp = see_other("/login");
    resp.headers_mut().append(
        header::SET_COOKIE,
        cookie(&state.settings.session, SESSION_COOKIE, "", 0, false),
    );
    Ok(resp)
}

fn setup_form(token: &str, email: &str, error: Option<&str>) -> Markup {
    bare(
        "Set up ai-review",
        html! {
            p { "No admin account exists yet. Create the first one; this page disappears once it exists." }
            (layout::notice(None, error))
            form.stack method="post" action="/setup" {
                input type="hidden" name="_form" value=(token);
                label for="email" { "Admin email" input #email type="email" name="email" value=(email) required autocomplete="username" autofocus; }
                label for="password" { "Password (at least 8 characters)" input #password type="password" name="password" required minlength="8" autocomplete="new-password"; }
                label for="confirm" { "Password again" input #confirm type="password" name="confirm" required minlength="8" autocomplete="new-password"; }
                button type="submit" { "Create admin and log in" }
            }
            p.muted { "Or from a shell on the server: " code { "ai-review admin create-user --email you@example.com --password-env PW --admin" } }
        },
    )
}

/// `GET /setup`: only while no admin exists.
pub async fn setup_page(State(state): State<AppState>) -> PageResult<Response> {
    if state.store.count_admins().await? > 0 {
        return Ok(see_other("/login"));
    }
    let (token, c) = form_token(&state);
    Ok(([(header::SET_COOKIE, c)], setup_form(&token, "", None)).into_response())
}

/// The setup form.
#[derive(Debug, Deserialize)]
pub struct SetupForm {
    #[serde(rename = "_form", default)]
    form: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
}

/// `POST /setup`: creates the first admin (atomically: a second setup
/// racing it gets 409) and logs them in.
pub async fn setup(
    State(state): State<AppState>,
    headers: HeaderMap,
    ConnectInfoIp(ip): ConnectInfoIp,
    axum::Form(f): axum::Form<SetupForm>,
) -> PageResult<Response> {
    throttle(&state, ip).await?;
    check_form_token(&headers, &f.form)?;
    let again = |msg: &str| -> PageResult<Response> {
        let (token, c) = form_token(&state);
        Ok((
            StatusCode::BAD_REQUEST,
            [(header::SET_COOKIE, c)],
            setup_form(&token, &f.email, Some(msg)),
        )
            .into_response())
    };
    let Ok(email) = Email::parse(f.email.trim()) else {
        return again("That is not an email address.");
    };
    if f.password != f.confirm {
        return again("The two passwords differ.");
    }
    let hash = match hash_password_async(f.password.clone()).await {
        Ok(h) => h,
        Err(e) => return again(&e.to_string()),
    };
    let created = state
        .store
        .create_first_admin(NewUser {
            id: UserId::generate(),
            email,
            password_hash: hash,
            role: Role::Admin,
            permissions: Vec::new(),
            now: state.clock.now(),
        })
        .await?;
    match created {
        Some(user) => {
            tracing::info!(user.id = %user.id, "first admin created through /setup");
            start_session(&state, &user, "/").await
        }
        None => Err(ApiError::conflict("ai-review is already set up: log in instead").into()),
    }
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn only_local_paths_are_followed_after_login() {
        for ok in [
            "/",
            "/reviews?status=failed",
            "/reviews/0190f000-0000-7000-8000-000000000000",
        ] {
            assert_eq!(safe_next(Some(ok)), ok);
        }
        for bad in [
            "//evil.example/x",
            "/\t/evil.example",
            "/\n/evil.example",
            "/ /evil.example",
            "/\\evil.example",
            "https://evil.example/",
            "evil.example",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/");
    }
}
