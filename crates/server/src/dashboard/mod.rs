//! The web dashboard: server-rendered HTML (maud), one stylesheet and one
//! small script embedded in the binary, live parts over SSE.
//!
//! * Every page needs a dashboard session ([`Viewer`]); without one, a page
//!   answers `303 See Other` to `/login?next=…` (HTML clients) or 401.
//! * Every state-changing form goes through [`Posted`], which refuses a
//!   cross-site submission: the session-bound CSRF token must be in the
//!   form, and the browser's `Sec-Fetch-Site`/`Origin` must not name
//!   another site.
//! * Actions call the same handler functions as the REST API with the
//!   viewer as the caller, so permissions are enforced on pages exactly as
//!   on the API.
//! * Pages read without JavaScript; `app.js` only subscribes to the SSE
//!   streams named by `data-live` attributes and swaps in the fragments.

mod assets;
mod charts;
mod layout;
mod live;
mod overview;
mod queue;
mod reviews;
mod runners;
mod session;
mod settings;

use crate::app::AppState;
use crate::auth::{Caller, is_cross_site, session_cookie};
use crate::error::ApiError;
use ai_review_domain::{Permission, Role, SessionSecret};
use ai_review_store::User;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::Markup;
use serde::de::DeserializeOwned;

/// The dashboard's routes (merged into the server's router).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/assets/{file}", get(assets::serve))
        .route("/sw.js", get(assets::service_worker))
        .route("/login", get(session::login_page).post(session::login))
        .route("/logout", post(session::logout))
        .route("/setup", get(session::setup_page).post(session::setup))
        .route("/", get(overview::page))
        .route("/runners", get(runners::page))
        .route("/runners/live", get(runners::live))
        .route("/queue", get(queue::page))
        .route("/queue/live", get(queue::live))
        .route("/queue/tasks/{id}/cancel", post(queue::cancel))
        .route("/queue/tasks/{id}/retry", post(queue::retry))
        .route("/api/queuedash", get(queue::api))
        .route("/reviews", get(reviews::list).post(reviews::create))
        .route("/reviews/{id}", get(reviews::detail))
        .route("/reviews/{id}/live", get(reviews::live))
        .route("/settings", get(settings::index))
        .route(
            "/settings/api-keys",
            get(settings::keys::page).post(settings::keys::create),
        )
        .route(
            "/settings/api-keys/{id}/revoke",
            post(settings::keys::revoke),
        )
        .route(
            "/settings/users",
            get(settings::users::page).post(settings::users::create),
        )
        .route("/settings/users/{id}", post(settings::users::update))
        .route(
            "/settings/platforms",
            get(settings::platforms::page).post(settings::platforms::create),
        )
        .route(
            "/settings/platforms/{id}/delete",
            post(settings::platforms::delete),
        )
        .route("/settings/projects", get(settings::projects::page))
        .route("/settings/projects/sync", post(settings::projects::sync))
        .route("/settings/projects/{id}", post(settings::projects::update))
        .route(
            "/settings/ai",
            get(settings::ai::page).post(settings::ai::create),
        )
        .route("/settings/ai/{id}/delete", post(settings::ai::delete))
        .route(
            "/settings/templates",
            get(settings::templates::page).post(settings::templates::create),
        )
        .route(
            "/settings/templates/{id}/delete",
            post(settings::templates::delete),
        )
        .route(
            "/settings/rules",
            get(settings::rules::page).post(settings::rules::create),
        )
        .route("/settings/rules/{id}/delete", post(settings::rules::delete))
        .route(
            "/settings/notifications",
            get(settings::notifications::page).post(settings::notifications::save),
        )
        .route(
            "/settings/notifications/test",
            post(settings::notifications::test),
        )
        .route(
            "/settings/notifications/vapid",
            post(settings::notifications::generate_vapid),
        )
        .route(
            "/settings/notifications/push/{id}/delete",
            post(settings::notifications::unsubscribe),
        )
}

/// A logged-in dashboard user (session cookie only: API keys do not open
/// pages).
#[derive(Debug, Clone)]
pub struct Viewer {
    /// The user.
    pub user: User,
    /// The session token (its CSRF token goes into every form).
    pub session: SessionSecret,
}

impl Viewer {
    /// The CSRF token to embed in forms.
    pub fn csrf(&self) -> String {
        self.session.csrf_token()
    }

    /// The viewer as an API caller, for calling the API's handlers.
    pub fn caller(&self) -> Caller {
        Caller {
            user: self.user.clone(),
            key: None,
        }
    }

    /// Whether the viewer holds `p` (admins hold all).
    pub fn can(&self, p: Permission) -> bool {
        self.user.has(p)
    }

    /// Whether the viewer is an admin.
    pub fn is_admin(&self) -> bool {
        self.user.role == Role::Admin
    }
}

/// Why a page could not be shown.
#[derive(Debug)]
pub enum PageError {
    /// Not logged in: redirect to the login page, then back to `next`.
    Login {
        /// Where to return after logging in.
        next: String,
    },
    /// Any other error: an HTML error page with the API error's status and
    /// detail.
    Api(ApiError),
}

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        PageError::Api(e)
    }
}

impl From<ai_review_store::StoreError> for PageError {
    fn from(e: ai_review_store::StoreError) -> Self {
        PageError::Api(e.into())
    }
}

impl From<ai_review_domain::ParseError> for PageError {
    fn from(e: ai_review_domain::ParseError) -> Self {
        PageError::Api(e.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            PageError::Login { next } => {
                let target = if next == "/" || next.is_empty() {
                    "/login".to_owned()
                } else {
                    format!("/login?next={}", url_encode(&next))
                };
                Redirect::to(&target).into_response()
            }
            PageError::Api(e) => {
                let status = e.status;
                let detail = e.detail.unwrap_or_else(|| {
                    "something went wrong on the server; the error is in its log".to_owned()
                });
                let mut resp = (status, layout::error_page(status, &detail)).into_response();
                for (k, v) in e.headers {
                    resp.headers_mut().insert(k, v);
                }
                resp
            }
        }
    }
}

/// A page handler's result.
pub type PageResult<T = Markup> = Result<T, PageError>;

/// Percent-encodes a query value.
pub fn url_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn original_path(parts: &Parts) -> String {
    parts
        .uri
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned())
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        let login = || PageError::Login {
            next: if parts.method == axum::http::Method::GET {
                original_path(parts)
            } else {
                "/".to_owned()
            },
        };
        let Some(secret) = session_cookie(&parts.headers) else {
            return Err(login());
        };
        match crate::auth::live_session(state, &secret).await? {
            Some((_, user)) => Ok(Viewer {
                user,
                session: secret,
            }),
            None => Err(login()),
        }
    }
}

/// A submitted dashboard form: the viewer, and the form's fields as `T`,
/// accepted only when the CSRF token matches the session and the browser
/// does not report a cross-site request. Anything else is 403 and nothing
/// changes.
#[derive(Debug)]
pub struct Posted<T> {
    /// Who submitted it.
    pub viewer: Viewer,
    /// The form's fields.
    pub form: T,
}

#[derive(serde::Deserialize)]
struct CsrfField {
    #[serde(rename = "_csrf", default)]
    csrf: String,
}

/// Largest form body the dashboard accepts.
const FORM_LIMIT_BYTES: usize = 256 * 1024;

impl<T: DeserializeOwned + Send> FromRequest<AppState> for Posted<T> {
    type Rejection = PageError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, PageError> {
        let (mut parts, body) = req.into_parts();
        let viewer = Viewer::from_request_parts(&mut parts, state).await?;
        if is_cross_site(&parts.headers) {
            return Err(ApiError::forbidden(
                "cross-site form submission refused: submit the form from the dashboard itself",
            )
            .into());
        }
        let is_form = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if !is_form {
            return Err(ApiError::bad_request(
                "expected a form (application/x-www-form-urlencoded)",
            )
            .into());
        }
        let bytes = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "the form is larger than the server accepts",
                )
            })?;
        if bytes.len() > FORM_LIMIT_BYTES {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the form is larger than the dashboard accepts (256 KiB)",
            )
            .into());
        }
        let token: CsrfField = serde_html_form::from_bytes(&bytes).map_err(|_| {
            ApiError::bad_request("the form could not be read; reload the page and try again")
        })?;
        if !viewer.session.csrf_matches(&token.csrf) {
            return Err(ApiError::forbidden(
                "the form's security token is missing or does not match your session (a cross-site submission, or the page is from an earlier login): reload the page and try again",
            )
            .into());
        }
        let form = serde_html_form::from_bytes(&bytes)
            .map_err(|e| ApiError::bad_request(format!("invalid form: {e}")))?;
        Ok(Posted { viewer, form })
    }
}

/// A form with no fields but the CSRF token.
#[derive(Debug, serde::Deserialize)]
pub struct NoFields {}

/// 303 to `to` (after a successful form post).
pub fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}
