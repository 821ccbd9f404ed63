//! `/runners`: every registered runner with its heartbeat-derived status,
//! live.

use super::layout::{self, Section, ago, badge, duration};
use super::{PageResult, Viewer, live};
use crate::app::AppState;
use crate::error::ApiError;
use crate::routes::views;
use ai_review_domain::{RunnerId, TaskState};
use axum::extract::State;
use axum::response::Response;
use maud::{Markup, html};
use std::collections::HashMap;

/// `GET /runners`.
pub async fn page(State(state): State<AppState>, viewer: Viewer) -> PageResult {
    let table = table(&state).await?;
    let timeout = state.settings.heartbeat_timeout;
    Ok(layout::page(
        &viewer,
        Section::Runners,
        "Runners",
        html! {
            p.muted {
                "Status comes from heartbeats: a runner silent for "
                (duration(i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX)))
                " (RUNNER_HEARTBEAT_TIMEOUT_MS) is offline and does not block the queue. "
                span.live-dot { "Updates live." }
            }
            div data-live="/runners/live" { (table) }
        },
    ))
}

/// `GET /runners/live`: the table again whenever it changes.
pub async fn live(State(state): State<AppState>, viewer: Viewer) -> Response {
    let st = state.clone();
    live::stream(
        &state,
        viewer.session,
        live::TABLE_INTERVAL,
        String::new(),
        move |last| {
            let state = st.clone();
            async move {
                let html = table(&state).await.ok()?.into_string();
                if html == last {
                    Some((Vec::new(), last))
                } else {
                    Some((vec![live::html_event("runners", &html)], html))
                }
            }
        },
    )
}

async fn table(state: &AppState) -> Result<Markup, ApiError> {
    let now = state.clock.now();
    let runners = state.store.list_runners().await?;
    let active = state
        .store
        .list_tasks(&[TaskState::PickedUp, TaskState::Executing], 1000)
        .await?;
    let mut held: HashMap<RunnerId, Vec<_>> = HashMap::new();
    for t in active {
        if let Some(r) = t.runner_id.clone() {
            held.entry(r).or_default().push(t);
        }
    }
    let rows: Vec<_> = runners
        .into_iter()
        .map(|r| views::runner(r, now, state.settings.heartbeat_timeout))
        .collect();
    Ok(html! {
        div #runners {
            @if rows.is_empty() {
                p.panel {
                    "No runner has registered yet. Start one with "
                    code { "RUNNER_SERVER_URL=… RUNNER_TOKEN=<API key> RUNNER_NAME=… ai-review runner" }
                    " (see the README)."
                }
            } @else {
                table {
                    caption.muted { (rows.len()) " runners" }
                    thead { tr {
                        th scope="col" { "Name" } th scope="col" { "Status" }
                        th scope="col" { "Last heartbeat" } th scope="col" { "Version" }
                        th scope="col" { "Tags" } th.num scope="col" { "Capacity" }
                        th scope="col" { "Current tasks" }
                    } }
                    tbody {
                        @for r in &rows {
                            tr data-runner=(r.id.as_str()) {
                                td { strong { (r.name) } br; span.muted.mono { (r.id.as_str()) } }
                                td { (badge(r.status.as_str())) }
                                td { (ago(now, r.last_heartbeat_at)) }
                                td.mono { (r.version) }
                                td { @for t in &r.tags { span.badge { (t) } " " } }
                                td.num { (r.active_jobs) " / " (r.max_concurrency) }
                                td {
                                    @match held.get(&r.id) {
                                        Some(tasks) => {
                                            @for t in tasks {
                                                a href={ "/reviews/" (t.review_id.as_str()) } {
                                                    (t.phase.map_or("claimed", |p| p.as_str()))
                                                }
                                                " "
                                            }
                                        }
                                        None => { span.muted { "none" } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    })
}
