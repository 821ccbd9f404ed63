//! `/settings/ai`: model connections. The API key is write-only.

use super::{Notice, checked, delete_button, done, page as settings_page, text};
use crate::app::AppState;
use crate::dashboard::layout::{csrf, select};
use crate::dashboard::{NoFields, PageResult, Posted, Viewer};
use crate::extract::ApiJson;
use crate::routes::configs;
use ai_review_domain::{LlmProvider, Permission};
use ai_review_protocol::configs::AiConfigWrite;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use maud::html;
use serde::Deserialize;

/// `GET /settings/ai`.
pub async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(n): Query<Notice>,
) -> PageResult {
    let Json(env) = configs::list_ai(State(state), viewer.caller()).await?;
    let list = env.data.unwrap_or_default();
    let providers: Vec<(String, String)> = vec![
        ("openai".into(), "OpenAI-compatible".into()),
        ("anthropic".into(), "Anthropic".into()),
    ];
    let body = html! {
        @if list.is_empty() { p.panel { "No AI config: reviews run the deterministic checks only." } } @else {
            table #ai-configs {
                thead { tr { th { "Name" } th { "Provider" } th { "Model" } th { "Base URL" } th { "API key" } th { "Budget (tokens)" } th { span.skip { "Actions" } } } }
                tbody { @for c in &list { tr {
                    td { (c.name) @if c.is_default { " " span.badge { "default" } } @if !c.enabled { " " span.badge { "disabled" } } }
                    td { (c.provider.as_str()) } td.mono { (c.model) } td.mono { (c.base_url) }
                    td { (if c.api_key.is_some() { "set" } else { "none" }) }
                    td.num { (c.token_budget) }
                    td { @if viewer.can(Permission::ConfigDelete) {
                        (delete_button(&viewer, &format!("/settings/ai/{}/delete", c.id.as_str()), &c.name))
                    } }
                } } }
            }
        }
        @if viewer.can(Permission::ConfigCreate) {
            section.panel aria-labelledby="new-ai-h" {
                h2 #new-ai-h { "Add an AI config" }
                form.stack method="post" action="/settings/ai" {
                    (csrf(&viewer))
                    label for="ai-name" { "Name" input #ai-name type="text" name="name" required; }
                    label for="ai-provider" { "Provider" (select("provider", "ai-provider", &providers, "openai")) }
                    label for="ai-url" { "Base URL" input #ai-url type="url" name="baseUrl" required placeholder="https://api.openai.com/v1"; }
                    label for="ai-model" { "Model" input #ai-model type="text" name="model" required; }
                    label for="ai-key" { "API key (stored encrypted, never shown again)" input #ai-key type="password" name="apiKey" autocomplete="off"; }
                    label.check for="ai-default" { input #ai-default type="checkbox" name="isDefault" value="on"; "Use by default" }
                    button type="submit" { "Add" }
                }
            }
        }
    };
    Ok(settings_page(&viewer, "/settings/ai", &n, body))
}

/// The add form.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateForm {
    name: String,
    provider: LlmProvider,
    base_url: String,
    model: String,
    #[serde(default)]
    api_key: String,
    is_default: Option<String>,
}

/// `POST /settings/ai`.
pub async fn create(
    State(state): State<AppState>,
    posted: Posted<CreateForm>,
) -> PageResult<Response> {
    let f = posted.form;
    let w = AiConfigWrite {
        name: Some(f.name),
        provider: Some(f.provider),
        base_url: Some(f.base_url),
        model: Some(f.model),
        api_key: Some(text(&f.api_key)),
        is_default: Some(checked(f.is_default.as_ref())),
        ..Default::default()
    };
    let r = configs::create_ai(State(state), posted.viewer.caller(), ApiJson(w)).await;
    done(r, "/settings/ai", "created")
}

/// `POST /settings/ai/:id/delete`.
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted<NoFields>,
) -> PageResult<Response> {
    let r = configs::delete_ai(State(state), posted.viewer.caller(), Path(id)).await;
    done(r, "/settings/ai", "deleted")
}
