//! `/queue` and `/api/queuedash`: counts per state, pending and running
//! tasks, recent failures, throughput; cancel and retry for those allowed.

use super::layout::{self, Section, badge, csrf};
use super::{NoFields, PageResult, Posted, Viewer, live, see_other};
use crate::app::{AppState, ok};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::routes::reviews;
use ai_review_domain::{Permission, Role, TaskId, TaskState};
use ai_review_protocol::Envelope;
use ai_review_protocol::api::{QueueDash, QueueTask, QueueThroughput};
use ai_review_store::{Task, User};
use axum::Json;
use axum::extract::{Path, State};
use axum::response::Response;
use maud::{Markup, html};

/// Most tasks listed per table.
const LIST_LIMIT: u32 = 100;
const HOUR_MS: i64 = 3_600_000;
/// Newest task timings read per refresh (the live queue page re-reads
/// every 2 s): enough for the last hour's throughput up to 10,000 tasks an
/// hour and for the recent failures, without reading a busy day each time.
const TIMINGS_LIMIT: u32 = 10_000;
/// Most recent failures listed.
const RECENT_FAILURES: usize = 20;

/// The queue rows for `tasks`, with `user`'s rights on each (a review
/// already retried offers no second retry); their reviews are read in one
/// batch.
async fn queue_tasks(state: &AppState, user: &User, tasks: Vec<Task>) -> ApiResult<Vec<QueueTask>> {
    let now = state.clock.now();
    let admin = user.role == Role::Admin;
    let ids: Vec<_> = tasks.iter().map(|t| t.review_id.clone()).collect();
    let reviews = state.store.get_reviews(&ids).await?;
    Ok(tasks
        .into_iter()
        .map(|t| {
            let review = reviews.iter().find(|r| r.id == t.review_id);
            let mine = admin || review.is_some_and(|r| r.created_by == user.id);
            let allowed = mine && user.has(Permission::ReviewCreate);
            let retried = review.is_some_and(|r| r.retried_as.is_some());
            QueueTask {
                can_cancel: allowed && !t.state.is_terminal(),
                can_retry: allowed
                    && !retried
                    && matches!(
                        t.state,
                        TaskState::Failed | TaskState::Expired | TaskState::Cancelled
                    ),
                age_ms: now.millis_since(t.created_at),
                task_id: t.id,
                review_id: t.review_id,
                state: t.state,
                phase: t.phase,
                attempt: t.attempt.0,
                max_attempts: t.max_attempts,
                runner_id: t.runner_id,
                required_tags: t.required_tags.to_vec(),
                failure_reason: t.failure_reason,
            }
        })
        .collect())
}

/// The queue as `user` sees it (their cancel/retry rights included).
pub async fn dash(state: &AppState, user: &User) -> ApiResult<QueueDash> {
    let now = state.clock.now();
    let counts = state.store.queue_counts().await?;
    let pending = queue_tasks(
        state,
        user,
        state
            .store
            .list_tasks(&[TaskState::Pending], LIST_LIMIT)
            .await?,
    )
    .await?;
    let running = queue_tasks(
        state,
        user,
        state
            .store
            .list_tasks(&[TaskState::PickedUp, TaskState::Executing], LIST_LIMIT)
            .await?,
    )
    .await?;
    let timings = state
        .store
        .task_timings(now.plus_millis(-24 * HOUR_MS), TIMINGS_LIMIT)
        .await?;
    let hour_ago = now.plus_millis(-HOUR_MS);
    let mut last_hour = QueueThroughput::default();
    for t in &timings {
        if t.finished_at.is_some_and(|f| f >= hour_ago) {
            match t.state {
                TaskState::Completed => last_hour.completed += 1,
                TaskState::Failed | TaskState::Expired | TaskState::Cancelled => {
                    last_hour.failed += 1;
                }
                _ => {}
            }
        }
    }
    last_hour.completed_per_minute = last_hour.completed as f64 / 60.0;
    let mut failed: Vec<_> = timings
        .iter()
        .filter(|t| {
            matches!(
                t.state,
                TaskState::Failed | TaskState::Expired | TaskState::Cancelled
            )
        })
        .collect();
    failed.sort_by_key(|t| std::cmp::Reverse(t.finished_at));
    let failed_ids: Vec<TaskId> = failed
        .into_iter()
        .take(RECENT_FAILURES)
        .map(|t| t.task_id.clone())
        .collect();
    let recent_failures =
        queue_tasks(state, user, state.store.get_tasks(&failed_ids).await?).await?;
    Ok(QueueDash {
        counts: TaskState::ALL
            .iter()
            .map(|s| {
                let n = counts.iter().find(|(k, _)| k == s).map_or(0, |(_, n)| *n);
                (s.as_str().to_owned(), n)
            })
            .collect(),
        oldest_pending_age_ms: pending.first().map(|t| t.age_ms),
        last_hour,
        pending,
        running,
        recent_failures,
    })
}

/// `GET /api/queuedash`: the queue monitoring view as JSON.
pub async fn api(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Envelope<QueueDash>>> {
    Ok(ok(dash(&state, &caller.user).await?))
}

/// `GET /queue`.
pub async fn page(State(state): State<AppState>, viewer: Viewer) -> PageResult {
    let body = body(&state, &viewer).await?;
    Ok(layout::page(
        &viewer,
        Section::Queue,
        "Queue",
        html! {
            p.muted { "Also as JSON at " a href="/api/queuedash" { code { "/api/queuedash" } } ". " span.live-dot { "Updates live." } }
            div data-live="/queue/live" { (body) }
        },
    ))
}

/// `GET /queue/live`.
pub async fn live(State(state): State<AppState>, viewer: Viewer) -> Response {
    let st = state.clone();
    let session = viewer.session.clone();
    live::stream(
        &state,
        session,
        live::TABLE_INTERVAL,
        String::new(),
        move |last| {
            let state = st.clone();
            let viewer = viewer.clone();
            async move {
                let html = body(&state, &viewer).await.ok()?.into_string();
                if html == last {
                    Some((Vec::new(), last))
                } else {
                    Some((vec![live::html_event("queue", &html)], html))
                }
            }
        },
    )
}

fn actions(viewer: &Viewer, t: &QueueTask) -> Markup {
    html! {
        @if t.can_cancel {
            form.inline method="post" action={ "/queue/tasks/" (t.task_id.as_str()) "/cancel" } {
                (csrf(viewer))
                button.danger type="submit" aria-label={ "Cancel task " (t.task_id.as_str()) } { "Cancel" }
            }
        }
        @if t.can_retry {
            form.inline method="post" action={ "/queue/tasks/" (t.task_id.as_str()) "/retry" } {
                (csrf(viewer))
                button.secondary type="submit" aria-label={ "Retry task " (t.task_id.as_str()) } { "Retry" }
            }
        }
    }
}

fn tasks_table(viewer: &Viewer, caption: &str, tasks: &[QueueTask], running: bool) -> Markup {
    html! {
        @if tasks.is_empty() {
            p.muted { "No " (caption.to_lowercase()) "." }
        } @else {
            table {
                caption.muted { (caption) " (" (tasks.len()) ")" }
                thead { tr {
                    th scope="col" { "Review" } th scope="col" { "State" }
                    th scope="col" { "Age" } th.num scope="col" { "Attempt" }
                    @if running { th scope="col" { "Runner" } th scope="col" { "Phase" } }
                    @else { th scope="col" { "Tags / reason" } }
                    th scope="col" { span.skip { "Actions" } }
                } }
                tbody {
                    @for t in tasks {
                        tr data-task=(t.task_id.as_str()) {
                            td { a.mono href={ "/reviews/" (t.review_id.as_str()) } { (&t.review_id.as_str()[..13.min(t.review_id.as_str().len())]) "…" } }
                            td { (badge(t.state.as_str())) }
                            td { (layout::coarse(t.age_ms)) }
                            td.num { (t.attempt) " / " (t.max_attempts) }
                            @if running {
                                td.mono { (t.runner_id.as_ref().map_or("-", |r| r.as_str())) }
                                td { (t.phase.map_or("-", |p| p.as_str())) }
                            } @else {
                                td {
                                    @for tag in &t.required_tags { span.badge { (tag) } " " }
                                    @if let Some(r) = &t.failure_reason { span.muted { (r) } }
                                }
                            }
                            td { (actions(viewer, t)) }
                        }
                    }
                }
            }
        }
    }
}

async fn body(state: &AppState, viewer: &Viewer) -> ApiResult<Markup> {
    let d = dash(state, &viewer.user).await?;
    Ok(html! {
        div #queue {
            div.cards {
                @for s in TaskState::ALL {
                    div.card { span.n { (d.counts.get(s.as_str()).copied().unwrap_or(0)) } span.l { (badge(s.as_str())) } }
                }
                div.card { span.n { (d.oldest_pending_age_ms.map_or_else(|| "–".to_owned(), layout::coarse)) } span.l { "oldest pending" } }
                div.card { span.n { (d.last_hour.completed) } span.l { "completed in the last hour (" (format!("{:.2}", d.last_hour.completed_per_minute)) "/min), " (d.last_hour.failed) " failed" } }
            }
            h2 { "Pending" }
            (tasks_table(viewer, "Pending tasks", &d.pending, false))
            h2 { "Running" }
            (tasks_table(viewer, "Running tasks", &d.running, true))
            h2 { "Failed, expired or cancelled (24 h)" }
            (tasks_table(viewer, "Recent failures", &d.recent_failures, false))
        }
    })
}

async fn review_of(state: &AppState, id: &str) -> ApiResult<String> {
    let id = TaskId::parse(id)?;
    let task = state
        .store
        .get_task(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("task {id} not found")))?;
    Ok(task.review_id.as_str().to_owned())
}

/// `POST /queue/tasks/:id/cancel`: the API's cancel, as the viewer.
pub async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted<NoFields>,
) -> PageResult<Response> {
    let review = review_of(&state, &id).await?;
    let _ = reviews::cancel(State(state), posted.viewer.caller(), Path(review)).await?;
    Ok(see_other("/queue"))
}

/// `POST /queue/tasks/:id/retry`: the API's retry, as the viewer; opens
/// the new review.
pub async fn retry(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted<NoFields>,
) -> PageResult<Response> {
    let review = review_of(&state, &id).await?;
    let (_, Json(env)) = reviews::retry(State(state), posted.viewer.caller(), Path(review)).await?;
    let to = env.data.map_or_else(
        || "/queue".to_owned(),
        |r| format!("/reviews/{}", r.id.as_str()),
    );
    Ok(see_other(&to))
}
