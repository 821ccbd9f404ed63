//! `/settings/templates`: review templates (the instructions every review
//! starts from).

use super::{Notice, checked, delete_button, done, page as settings_page};
use crate::app::AppState;
use crate::dashboard::layout::csrf;
use crate::dashboard::{NoFields, PageResult, Posted, Viewer};
use crate::extract::ApiJson;
use crate::routes::configs;
use ai_review_domain::Permission;
use ai_review_protocol::configs::TemplateWrite;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use maud::html;
use serde::Deserialize;

/// `GET /settings/templates`.
pub async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(n): Query<Notice>,
) -> PageResult {
    let Json(env) = configs::list_templates(State(state), viewer.caller()).await?;
    let list = env.data.unwrap_or_default();
    let body = html! {
        @if list.is_empty() { p.panel { "No templates: reviews use the built-in instructions." } }
        @for t in &list {
            section.panel {
                h2 { (t.name) @if t.is_default { " " span.badge { "default" } } }
                pre.mono { (t.content) }
                @if viewer.can(Permission::ConfigDelete) {
                    (delete_button(&viewer, &format!("/settings/templates/{}/delete", t.id.as_str()), &t.name))
                }
            }
        }
        @if viewer.can(Permission::ConfigCreate) {
            section.panel aria-labelledby="new-tpl-h" {
                h2 #new-tpl-h { "Add a template" }
                form.stack method="post" action="/settings/templates" {
                    (csrf(&viewer))
                    label for="tpl-name" { "Name" input #tpl-name type="text" name="name" required; }
                    label for="tpl-content" { "Instructions" textarea #tpl-content name="content" required {} }
                    label.check for="tpl-default" { input #tpl-default type="checkbox" name="isDefault" value="on"; "Use by default" }
                    button type="submit" { "Add" }
                }
            }
        }
    };
    Ok(settings_page(&viewer, "/settings/templates", &n, body))
}

/// The add form.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateForm {
    name: String,
    content: String,
    is_default: Option<String>,
}

/// `POST /settings/templates`.
pub async fn create(
    State(state): State<AppState>,
    posted: Posted<CreateForm>,
) -> PageResult<Response> {
    let f = posted.form;
    let w = TemplateWrite {
        name: Some(f.name),
        content: Some(f.content),
        is_default: Some(checked(f.is_default.as_ref())),
    };
    let r = configs::create_template(State(state), posted.viewer.caller(), ApiJson(w)).await;
    done(r, "/settings/templates", "created")
}

/// `POST /settings/templates/:id/delete`.
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted<NoFields>,
) -> PageResult<Response> {
    let r = configs::delete_template(State(state), posted.viewer.caller(), Path(id)).await;
    done(r, "/settings/templates", "deleted")
}
