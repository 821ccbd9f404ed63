//! `/settings/rules`: path-scoped review instructions.

use super::{Notice, delete_button, done, page as settings_page};
use crate::app::AppState;
use crate::dashboard::layout::{badge, csrf};
use crate::dashboard::{NoFields, PageResult, Posted, Viewer};
use crate::extract::ApiJson;
use crate::routes::configs;
use ai_review_domain::Permission;
use ai_review_protocol::configs::RuleWrite;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use maud::html;
use serde::Deserialize;

/// `GET /settings/rules`.
pub async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(n): Query<Notice>,
) -> PageResult {
    let Json(env) = configs::list_rules(State(state), viewer.caller()).await?;
    let list = env.data.unwrap_or_default();
    let body = html! {
        @if list.is_empty() { p.panel { "No rules yet." } } @else {
            table #rules {
                thead { tr { th { "Name" } th { "Paths" } th { "Instructions" } th { "State" } th { span.skip { "Actions" } } } }
                tbody { @for r in &list { tr {
                    td { (r.name) } td.mono { (r.paths.join(", ")) } td { (r.instructions) }
                    td { (badge(if r.enabled { "active" } else { "inactive" })) }
                    td { @if viewer.can(Permission::ConfigDelete) {
                        (delete_button(&viewer, &format!("/settings/rules/{}/delete", r.id.as_str()), &r.name))
                    } }
                } } }
            }
        }
        @if viewer.can(Permission::ConfigCreate) {
            section.panel aria-labelledby="new-rule-h" {
                h2 #new-rule-h { "Add a rule" }
                form.stack method="post" action="/settings/rules" {
                    (csrf(&viewer))
                    label for="rule-name" { "Name" input #rule-name type="text" name="name" required; }
                    label for="rule-paths" { "Paths (globs, comma-separated)" input #rule-paths type="text" name="paths" required placeholder="src/**/*.rs, migrations/**"; }
                    label for="rule-text" { "Instructions" textarea #rule-text name="instructions" required {} }
                    button type="submit" { "Add" }
                }
            }
        }
    };
    Ok(settings_page(&viewer, "/settings/rules", &n, body))
}

/// The add form.
#[derive(Debug, Deserialize)]
pub struct CreateForm {
    name: String,
    paths: String,
    instructions: String,
}

/// `POST /settings/rules`.
pub async fn create(
    State(state): State<AppState>,
    posted: Posted<CreateForm>,
) -> PageResult<Response> {
    let f = posted.form;
    let w = RuleWrite {
        name: Some(f.name),
        paths: Some(
            f.paths
                .split(',')
                .map(|p| p.trim().to_owned())
                .filter(|p| !p.is_empty())
                .collect(),
        ),
        instructions: Some(f.instructions),
        enabled: Some(true),
    };
    let r = configs::create_rule(State(state), posted.viewer.caller(), ApiJson(w)).await;
    done(r, "/settings/rules", "created")
}

/// `POST /settings/rules/:id/delete`.
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted<NoFields>,
) -> PageResult<Response> {
    let r = configs::delete_rule(State(state), posted.viewer.caller(), Path(id)).await;
    done(r, "/settings/rules", "deleted")
}
