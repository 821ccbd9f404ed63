//! `/settings/...`: API keys, users, platforms, projects, AI configs,
//! templates and rules. Every action calls the REST API's handler as the
//! viewer, so the API's permission checks apply unchanged; secrets are
//! write-only here (never rendered back, shown as "set").

pub mod ai;
pub mod keys;
pub mod notifications;
pub mod platforms;
pub mod projects;
pub mod rules;
pub mod templates;
pub mod users;

use super::layout::{self, Section};
use super::{PageResult, Viewer, see_other};
use crate::error::ApiResult;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

const PAGES: [(&str, &str); 8] = [
    ("/settings/api-keys", "API keys"),
    ("/settings/platforms", "Platforms"),
    ("/settings/projects", "Projects"),
    ("/settings/ai", "AI configs"),
    ("/settings/templates", "Templates"),
    ("/settings/rules", "Rules"),
    ("/settings/notifications", "Notifications"),
    ("/settings/users", "Users"),
];

/// `GET /settings`: the first settings page.
pub async fn index(_viewer: Viewer) -> Response {
    see_other("/settings/api-keys")
}

/// The outcome notice after a redirect (`?ok=created` …): fixed words, so
/// a crafted link cannot put its own text on the page.
#[derive(Debug, Default, Deserialize)]
pub struct Notice {
    ok: Option<String>,
}

impl Notice {
    fn text(&self) -> Option<&'static str> {
        Some(match self.ok.as_deref()? {
            "created" => "Created.",
            "updated" => "Saved.",
            "deleted" => "Deleted.",
            "revoked" => "Revoked: requests with this key now get 401.",
            "synced" => "Projects synchronised.",
            "tested" => "Test message delivered.",
            _ => return None,
        })
    }
}

/// A settings page: the sub-navigation, the notice, then `body`.
pub fn page(viewer: &Viewer, path: &str, notice: &Notice, body: Markup) -> Markup {
    let title = PAGES
        .iter()
        .find(|(p, _)| *p == path)
        .map_or("Settings", |(_, t)| *t);
    layout::page(
        viewer,
        Section::Settings,
        &format!("Settings · {title}"),
        html! {
            nav aria-label="Settings" {
                ul.subnav {
                    @for (p, t) in PAGES {
                        li { @if p == path { a href=(p) aria-current="page" { (t) } } @else { a href=(p) { (t) } } }
                    }
                }
            }
            (layout::notice(notice.text(), None))
            (body)
        },
    )
}

/// After a successful action: back to `path` with a fixed notice.
pub fn done<T>(r: ApiResult<T>, path: &str, what: &str) -> PageResult<Response> {
    r?;
    Ok(see_other(&format!("{path}?ok={what}")))
}

/// The small form that deletes one item (`action` is its delete route).
pub fn delete_button(viewer: &Viewer, action: &str, name: &str) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            (layout::csrf(viewer))
            button.danger type="submit" aria-label={ "Delete " (name) } { "Delete" }
        }
    }
}

/// A checkbox's value (absent when unchecked).
pub fn checked(v: Option<&String>) -> bool {
    v.is_some()
}

/// A trimmed optional text field (blank = absent).
pub fn text(v: &str) -> Option<String> {
    Some(v.trim().to_owned()).filter(|s| !s.is_empty())
}
