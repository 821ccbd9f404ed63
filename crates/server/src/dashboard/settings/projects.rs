//! `/settings/projects`: synchronised projects, their switches, and sync.

use super::{Notice, checked, done, page as settings_page};
use crate::app::AppState;
use crate::dashboard::layout::{badge, csrf, select, time};
use crate::dashboard::{PageResult, Posted, Viewer};
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::routes::{platforms, projects, sync};
use ai_review_domain::{ConfigId, Permission};
use ai_review_protocol::projects::{ProjectUpdate, SyncRequest};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use maud::html;
use serde::Deserialize;

/// `GET /settings/projects`.
pub async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(n): Query<Notice>,
) -> PageResult {
    let Json(env) = projects::list(State(state.clone()), viewer.caller()).await?;
    let list = env.data.unwrap_or_default();
    let Json(pf) = platforms::list(State(state), viewer.caller()).await?;
    let pf: Vec<(String, String)> = pf
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|p| {
            (
                p.id.as_str().to_owned(),
                format!("{} ({})", p.name, p.platform_type.as_str()),
            )
        })
        .collect();
    let auto_opts: Vec<(String, String)> = vec![
        ("inherit".into(), "inherit global".into()),
        ("on".into(), "on".into()),
        ("off".into(), "off".into()),
    ];
    let can_update = viewer.can(Permission::ProjectUpdate);
    let body = html! {
        @if viewer.can(Permission::ProjectCreate) && !pf.is_empty() {
            section.panel aria-labelledby="sync-h" {
                h2 #sync-h { "Synchronise" }
                form.row method="post" action="/settings/projects/sync" {
                    (csrf(&viewer))
                    label for="sync-pf" { "Platform" (select("platformConfigId", "sync-pf", &pf, "")) }
                    button type="submit" { "Sync projects" }
                }
            }
        }
        @if list.is_empty() { p.panel { "No projects yet: connect a platform, then synchronise." } } @else {
            table #projects {
                thead { tr { th { "Project" } th { "Webhook" } th { "Synced" } th { "Review settings" } } }
                tbody { @for p in &list {
                    @let auto = match p.settings.auto_review { None => "inherit", Some(true) => "on", Some(false) => "off" };
                    tr {
                        td {
                            @if is_web_link(&p.web_url) { a href=(p.web_url) { (p.path) } } @else { (p.path) }
                            br; span.muted { (p.platform_type.as_str()) }
                        }
                        td { (badge(p.webhook_status.as_str())) }
                        td { (time(p.synced_at)) }
                        td { @if can_update {
                            form.row method="post" action={ "/settings/projects/" (p.id.as_str()) } aria-label={ "Settings of " (p.path) } {
                                (csrf(&viewer))
                                label.check for={ "en-" (p.id.as_str()) } {
                                    @if p.enabled { input id={ "en-" (p.id.as_str()) } type="checkbox" name="enabled" value="on" checked; }
                                    @else { input id={ "en-" (p.id.as_str()) } type="checkbox" name="enabled" value="on"; }
                                    "Enabled"
                                }
                                label for={ "ar-" (p.id.as_str()) } { "Auto-review" (select("autoReview", &format!("ar-{}", p.id.as_str()), &auto_opts, auto)) }
                                button.secondary type="submit" { "Save" }
                            }
                        } @else {
                            (if p.enabled { "enabled" } else { "disabled" }) ", auto-review " (auto)
                        } }
                    }
                } }
            }
        }
    };
    Ok(settings_page(&viewer, "/settings/projects", &n, body))
}

/// Only `http(s)` URLs from the forge become links: a `javascript:` URL
/// from a hostile forge must never be clickable in the dashboard.
fn is_web_link(u: &str) -> bool {
    url::Url::parse(u).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
}

/// The sync form.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncForm {
    platform_config_id: String,
}

/// `POST /settings/projects/sync`.
pub async fn sync(State(state): State<AppState>, posted: Posted<SyncForm>) -> PageResult<Response> {
    let id = ConfigId::parse(posted.form.platform_config_id.trim())?;
    let r = sync::sync(
        State(state),
        posted.viewer.caller(),
        ApiJson(SyncRequest {
            platform_config_id: id,
        }),
    )
    .await;
    let Json(env) = r?;
    if let Some(res) = env.data
        && !res.errors.is_empty()
    {
        return Err(ApiError::new(
            axum::http::StatusCode::BAD_GATEWAY,
            format!(
                "synced {} of {}; errors: {}",
                res.synced,
                res.total,
                res.errors.join("; ")
            ),
        )
        .into());
    }
    done(Ok(()), "/settings/projects", "synced")
}

/// A project's settings form.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateForm {
    enabled: Option<String>,
    auto_review: String,
}

/// `POST /settings/projects/:id`.
pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted<UpdateForm>,
) -> PageResult<Response> {
    let auto = match posted.form.auto_review.as_str() {
        "on" => Some(true),
        "off" => Some(false),
        _ => None,
    };
    let u = ProjectUpdate {
        enabled: Some(checked(posted.form.enabled.as_ref())),
        auto_review: Some(auto),
        ..Default::default()
    };
    let r = projects::update(State(state), posted.viewer.caller(), Path(id), ApiJson(u)).await;
    done(r, "/settings/projects", "updated")
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_http_urls_become_links() {
        assert!(super::is_web_link("https://gitlab.example.com/group/app"));
        assert!(super::is_web_link("http://127.0.0.1:8080/a"));
        assert!(!super::is_web_link("javascript:alert(1)"));
        assert!(!super::is_web_link("JavaScript:alert(1)"));
        assert!(!super::is_web_link("data:text/html,x"));
        assert!(!super::is_web_link("/relative"));
    }
}
