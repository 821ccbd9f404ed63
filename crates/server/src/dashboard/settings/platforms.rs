//! `/settings/platforms`: GitLab and GitHub connections. Tokens and
//! secrets are write-only: the page says whether one is set, never what.

use super::{Notice, checked, delete_button, done, page as settings_page, text};
use crate::app::AppState;
use crate::dashboard::layout::{badge, csrf, select};
use crate::dashboard::{NoFields, PageResult, Posted, Viewer};
use crate::extract::ApiJson;
use crate::routes::platforms;
use ai_review_domain::{Permission, PlatformAuthType, PlatformType};
use ai_review_protocol::configs::PlatformConfigWrite;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use maud::html;
use serde::Deserialize;

fn set(v: Option<&String>) -> &'static str {
    if v.is_some_and(|s| !s.is_empty()) {
        "set"
    } else {
        "not set"
    }
}

/// `GET /settings/platforms`.
pub async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(n): Query<Notice>,
) -> PageResult {
    let Json(env) = platforms::list(State(state), viewer.caller()).await?;
    let list = env.data.unwrap_or_default();
    let types: Vec<(String, String)> = vec![
        ("gitlab".into(), "GitLab".into()),
        ("github".into(), "GitHub".into()),
    ];
    let body = html! {
        @if list.is_empty() { p.panel { "No platform connected yet." } } @else {
            table #platforms {
                thead { tr { th { "Name" } th { "Type" } th { "Base URL" } th { "Access token" } th { "Webhook secret" } th { "State" } th { span.skip { "Actions" } } } }
                tbody { @for p in &list { tr {
                    td { (p.name) @if p.is_default { " " span.badge { "default" } } }
                    td { (p.platform_type.as_str()) } td.mono { (p.base_url) }
                    td { (set(p.access_token.as_ref())) } td { (set(p.webhook_secret.as_ref())) }
                    td { (badge(if p.enabled { "active" } else { "inactive" })) }
                    td { @if viewer.can(Permission::ConfigDelete) {
                        (delete_button(&viewer, &format!("/settings/platforms/{}/delete", p.id.as_str()), &p.name))
                    } }
                } } }
            }
        }
        @if viewer.can(Permission::ConfigCreate) {
            section.panel aria-labelledby="new-platform-h" {
                h2 #new-platform-h { "Connect a platform" }
                form.stack method="post" action="/settings/platforms" {
                    (csrf(&viewer))
                    label for="pf-name" { "Name" input #pf-name type="text" name="name" required; }
                    label for="pf-type" { "Type" (select("platformType", "pf-type", &types, "gitlab")) }
                    label for="pf-url" { "Base URL" input #pf-url type="url" name="baseUrl" required placeholder="https://gitlab.example.com"; }
                    label for="pf-token" { "Access token" input #pf-token type="password" name="accessToken" autocomplete="off"; }
                    label for="pf-secret" { "Webhook secret" input #pf-secret type="password" name="webhookSecret" autocomplete="off"; }
                    label.check for="pf-default" { input #pf-default type="checkbox" name="isDefault" value="on"; "Default for its type" }
                    button type="submit" { "Connect" }
                }
            }
        } @else {
            p.muted { "Connecting a platform needs the config:create permission." }
        }
    };
    Ok(settings_page(&viewer, "/settings/platforms", &n, body))
}

/// The connect form.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateForm {
    name: String,
    platform_type: PlatformType,
    base_url: String,
    #[serde(default)]
    access_token: String,
    #[serde(default)]
    webhook_secret: String,
    is_default: Option<String>,
}

/// `POST /settings/platforms`.
pub async fn create(
    State(state): State<AppState>,
    posted: Posted<CreateForm>,
) -> PageResult<Response> {
    let f = posted.form;
    let w = PlatformConfigWrite {
        name: Some(f.name),
        platform_type: Some(f.platform_type),
        base_url: Some(f.base_url),
        auth_type: Some(PlatformAuthType::Token),
        access_token: Some(text(&f.access_token)),
        webhook_secret: Some(text(&f.webhook_secret)),
        enabled: Some(true),
        is_default: Some(checked(f.is_default.as_ref())),
        ..Default::default()
    };
    let r = platforms::create(State(state), posted.viewer.caller(), ApiJson(w)).await;
    done(r, "/settings/platforms", "created")
}

/// `POST /settings/platforms/:id/delete`.
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted<NoFields>,
) -> PageResult<Response> {
    let r = platforms::delete(State(state), posted.viewer.caller(), Path(id)).await;
    done(r, "/settings/platforms", "deleted")
}
