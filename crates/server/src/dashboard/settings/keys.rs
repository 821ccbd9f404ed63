//! `/settings/api-keys`: the viewer's keys; a created key is shown once.

use super::{Notice, done, page as settings_page};
use crate::app::AppState;
use crate::dashboard::layout::{csrf, time};
use crate::dashboard::{NoFields, PageResult, Posted, Viewer};
use crate::extract::ApiJson;
use crate::routes::keys;
use ai_review_protocol::api::CreateApiKeyRequest;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

async fn body(
    state: &AppState,
    viewer: &Viewer,
    created: Option<(&str, &str)>,
) -> PageResult<Markup> {
    let list = state.store.list_api_keys(&viewer.user.id).await?;
    let now = state.clock.now();
    Ok(html! {
        @if let Some((name, key)) = created {
            section.secret-once role="status" aria-labelledby="new-key-h" {
                h2 #new-key-h { "Your new key “" (name) "”" }
                p { "Copy it now: it is shown only this once and cannot be recovered (only its digest is stored)." }
                p { code #new-key { (key) } }
            }
        }
        section.panel aria-labelledby="create-h" {
            h2 #create-h { "Create a key" }
            p.muted { "Keys carry your permissions. Send them as " code { "Authorization: Bearer <key>" } " or " code { "x-api-key" } "; runners register with one as RUNNER_TOKEN." }
            form.row method="post" action="/settings/api-keys" {
                (csrf(viewer))
                label for="key-name" { "Name" input #key-name type="text" name="name" required maxlength="100" placeholder="ci-runner-1"; }
                label for="key-days" { "Expires in days (optional)" input #key-days type="number" name="expiresInDays" min="1"; }
                button type="submit" { "Create key" }
            }
        }
        h2 { "Your keys" }
        @if list.is_empty() { p.muted { "No keys yet." } } @else {
            table #keys {
                thead { tr { th { "Name" } th { "Key" } th { "Created" } th { "Last used" } th { "Expires" } th { "State" } th { span.skip { "Actions" } } } }
                tbody { @for k in &list {
                    @let live = k.revoked_at.is_none() && k.expires_at.is_none_or(|e| e > now);
                    tr {
                        td { (k.name) } td.mono { (k.prefix) "…" } td { (time(k.created_at)) }
                        td { (k.last_used_at.map_or_else(|| "never".to_owned(), time)) }
                        td { (k.expires_at.map_or_else(|| "never".to_owned(), time)) }
                        td { @if live { span.badge.b-active { "active" } } @else { span.badge.b-inactive { "revoked or expired" } } }
                        td { @if live {
                            form.inline method="post" action={ "/settings/api-keys/" (k.id.as_str()) "/revoke" } {
                                (csrf(viewer))
                                button.danger type="submit" aria-label={ "Revoke " (k.name) } { "Revoke" }
                            }
                        } }
                    }
                } }
            }
        }
    })
}

/// `GET /settings/api-keys`.
pub async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(n): Query<Notice>,
) -> PageResult {
    let b = body(&state, &viewer, None).await?;
    Ok(settings_page(&viewer, "/settings/api-keys", &n, b))
}

/// The create form.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateForm {
    name: String,
    #[serde(default)]
    expires_in_days: String,
}

/// `POST /settings/api-keys`: creates the key and shows it once (no
/// redirect, so it never lands in history or a URL).
pub async fn create(State(state): State<AppState>, posted: Posted<CreateForm>) -> PageResult {
    let days = match super::text(&posted.form.expires_in_days) {
        Some(d) => Some(d.parse::<u32>().map_err(|_| {
            crate::error::ApiError::bad_request("expires in days must be a whole number")
        })?),
        None => None,
    };
    let req = CreateApiKeyRequest {
        name: posted.form.name.clone(),
        expires_in_days: days,
    };
    let Json(env) =
        keys::create(State(state.clone()), posted.viewer.caller(), ApiJson(req)).await?;
    let created = env
        .data
        .ok_or_else(|| crate::error::ApiError::bad_request("no key"))?;
    let b = body(
        &state,
        &posted.viewer,
        Some((&created.api_key.name, &created.key)),
    )
    .await?;
    Ok(settings_page(
        &posted.viewer,
        "/settings/api-keys",
        &Notice::default(),
        b,
    ))
}

/// `POST /settings/api-keys/:id/revoke`.
pub async fn revoke(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted<NoFields>,
) -> PageResult<Response> {
    let r = keys::revoke(State(state), posted.viewer.caller(), Path(id)).await;
    done(r, "/settings/api-keys", "revoked")
}
