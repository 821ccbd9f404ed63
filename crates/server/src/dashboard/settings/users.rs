//! `/settings/users` (admins): accounts, roles and permissions.

use super::{Notice, checked, done, page as settings_page};
use crate::app::AppState;
use crate::dashboard::layout::{csrf, time};
use crate::dashboard::{PageResult, Posted, Viewer};
use crate::extract::ApiJson;
use crate::routes::users;
use ai_review_domain::{Permission, Role};
use ai_review_protocol::api::{CreateUserRequest, UpdateUserRequest, UserView};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

fn perms_boxes(prefix: &str, current: &[String]) -> Markup {
    html! {
        fieldset {
            legend { "Permissions" }
            @for p in Permission::ALL {
                @let id = format!("{prefix}-{}", p.as_str().replace(':', "-"));
                label.check for=(id) {
                    @if current.iter().any(|c| c == p.as_str()) {
                        input id=(id) type="checkbox" name="permissions" value=(p.as_str()) checked;
                    } @else {
                        input id=(id) type="checkbox" name="permissions" value=(p.as_str());
                    }
                    (p.as_str())
                }
            }
        }
    }
}

fn role_select(id: &str, current: Role) -> Markup {
    let opts: Vec<(String, String)> = Role::ALL
        .iter()
        .map(|r| (r.as_str().to_owned(), r.as_str().to_owned()))
        .collect();
    crate::dashboard::layout::select("role", id, &opts, current.as_str())
}

fn user_row(viewer: &Viewer, u: &UserView) -> Markup {
    let prefix = format!("u-{}", u.id.as_str());
    html! {
        tr {
            td { (u.email) @if u.id == viewer.user.id { " " span.muted { "(you)" } } br; span.muted { "since " (time(u.created_at)) } }
            td {
                form.stack method="post" action={ "/settings/users/" (u.id.as_str()) } aria-label={ "Edit " (u.email) } {
                    (csrf(viewer))
                    label for={ (prefix) "-role" } { "Role" (role_select(&format!("{prefix}-role"), u.role)) }
                    (perms_boxes(&prefix, &u.permissions))
                    label.check for={ (prefix) "-disabled" } {
                        @if u.disabled { input id={ (prefix) "-disabled" } type="checkbox" name="disabled" value="on" checked; }
                        @else { input id={ (prefix) "-disabled" } type="checkbox" name="disabled" value="on"; }
                        "Disabled (cannot log in; keys stop working)"
                    }
                    label for={ (prefix) "-pw" } { "New password (optional)" input id={ (prefix) "-pw" } type="password" name="password" minlength="8" autocomplete="new-password"; }
                    button.secondary type="submit" { "Save " (u.email) }
                }
            }
        }
    }
}

/// `GET /settings/users` (admins; others get 403 as from the API).
pub async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(n): Query<Notice>,
) -> PageResult {
    let Json(env) = users::list(State(state), viewer.caller()).await?;
    let list = env.data.unwrap_or_default();
    let body = html! {
        section.panel aria-labelledby="new-user-h" {
            h2 #new-user-h { "Add a user" }
            form.stack method="post" action="/settings/users" {
                (csrf(&viewer))
                label for="nu-email" { "Email" input #nu-email type="email" name="email" required; }
                label for="nu-pw" { "Initial password (at least 8 characters)" input #nu-pw type="password" name="password" required minlength="8" autocomplete="new-password"; }
                label for="nu-role" { "Role" (role_select("nu-role", Role::User)) }
                (perms_boxes("nu", &["review:create".to_owned()]))
                button type="submit" { "Add user" }
            }
        }
        h2 { "Users (" (list.len()) ")" }
        table #users {
            thead { tr { th { "User" } th { "Access" } } }
            tbody { @for u in &list { (user_row(&viewer, u)) } }
        }
    };
    Ok(settings_page(&viewer, "/settings/users", &n, body))
}

/// The add-user form.
#[derive(Debug, Deserialize)]
pub struct CreateForm {
    email: String,
    password: String,
    role: Role,
    #[serde(default)]
    permissions: Vec<String>,
}

/// `POST /settings/users`.
pub async fn create(
    State(state): State<AppState>,
    posted: Posted<CreateForm>,
) -> PageResult<Response> {
    let f = posted.form;
    let r = users::create(
        State(state),
        posted.viewer.caller(),
        ApiJson(CreateUserRequest {
            email: f.email,
            password: f.password,
            role: Some(f.role),
            permissions: f.permissions,
        }),
    )
    .await;
    done(r, "/settings/users", "created")
}

/// The edit-user form.
#[derive(Debug, Deserialize)]
pub struct UpdateForm {
    role: Role,
    #[serde(default)]
    permissions: Vec<String>,
    disabled: Option<String>,
    #[serde(default)]
    password: String,
}

/// `POST /settings/users/:id`.
pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted<UpdateForm>,
) -> PageResult<Response> {
    let f = posted.form;
    let r = users::update(
        State(state),
        posted.viewer.caller(),
        Path(id),
        ApiJson(UpdateUserRequest {
            role: Some(f.role),
            permissions: Some(f.permissions),
            disabled: Some(checked(f.disabled.as_ref())),
            password: super::text(&f.password),
        }),
    )
    .await;
    done(r, "/settings/users", "updated")
}
