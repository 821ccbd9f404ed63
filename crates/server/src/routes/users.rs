//! Users, for admins: `GET /api/users`, `POST /api/users`,
//! `PATCH /api/users/:id`. (The first admin is created by the dashboard's
//! one-time `/setup` page or `ai-review admin create-user --admin`.)

use crate::app::{AppState, ok};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::passwords::hash_password_async;
use ai_review_domain::{Email, Permission, Role, UserId};
use ai_review_protocol::Envelope;
use ai_review_protocol::api::{CreateUserRequest, UpdateUserRequest, UserView};
use ai_review_store::{NewUser, User, UserUpdate};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

/// A user as admins see it.
pub fn view(u: User) -> UserView {
    UserView {
        id: u.id,
        email: u.email.as_str().to_owned(),
        role: u.role,
        permissions: u
            .permissions
            .iter()
            .map(|p| p.as_str().to_owned())
            .collect(),
        disabled: u.disabled,
        created_at: u.created_at,
    }
}

fn permissions(names: &[String]) -> ApiResult<Vec<Permission>> {
    let mut out = Vec::new();
    for n in names {
        let p = Permission::parse(n.trim()).map_err(|_| {
            ApiError::bad_request(format!(
                "unknown permission {n:?}; known: {}",
                Permission::ALL
                    .iter()
                    .map(|p| p.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        if !out.contains(&p) {
            out.push(p);
        }
    }
    Ok(out)
}

async fn hashed(password: &str) -> ApiResult<String> {
    hash_password_async(password.to_owned())
        .await
        .map_err(|e| match e {
            crate::passwords::PasswordError::TooShort => ApiError::bad_request(e.to_string()),
            other => ApiError::internal(&other),
        })
}

/// `GET /api/users` (admin): every user, oldest first.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Envelope<Vec<UserView>>>> {
    caller.require_admin()?;
    let users = state.store.list_users().await?;
    Ok(ok(users.into_iter().map(view).collect()))
}

/// `POST /api/users` (admin): 201 with the new user.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateUserRequest>,
) -> ApiResult<(StatusCode, Json<Envelope<UserView>>)> {
    caller.require_admin()?;
    let email = Email::parse(req.email.trim())?;
    let user = state
        .store
        .create_user(NewUser {
            id: UserId::generate(),
            email,
            password_hash: hashed(&req.password).await?,
            role: req.role.unwrap_or(Role::User),
            permissions: permissions(&req.permissions)?,
            now: state.clock.now(),
        })
        .await?;
    tracing::info!(user.id = %user.id, by = %caller.user.id, "user created");
    Ok((StatusCode::CREATED, ok(view(user))))
}

/// `PATCH /api/users/:id` (admin): role, permissions, disabled, password.
/// Refused (409) when it would leave no enabled admin.
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UpdateUserRequest>,
) -> ApiResult<Json<Envelope<UserView>>> {
    caller.require_admin()?;
    let id = UserId::parse(&id)?;
    let user = state
        .store
        .update_user(UserUpdate {
            id,
            role: req.role,
            permissions: req.permissions.as_deref().map(permissions).transpose()?,
            disabled: req.disabled,
            password_hash: match req.password.as_deref() {
                Some(p) => Some(hashed(p).await?),
                None => None,
            },
        })
        .await?;
    tracing::info!(user.id = %user.id, by = %caller.user.id, "user updated");
    Ok(ok(view(user)))
}
