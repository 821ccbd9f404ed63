//! `/reviews` (list with the API's filters, and a form to queue one) and
//! `/reviews/:id` (summary, findings by file with code context, files not
//! reviewed, phase timeline, usage, and the task log, live while it runs).

use super::layout::{self, Section, ago, badge, csrf, duration, time};
use super::{PageError, PageResult, Posted, Viewer, live, see_other, url_encode};
use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};
use crate::routes::reviews::{self as api, ListQuery};
use ai_review_domain::{CommitSha, Permission, RepoUrl, ReviewId, TaskState};
use ai_review_executor::ExecutorOutput;
use ai_review_executor::checks::Finding;
use ai_review_protocol::api::{CreateReviewRequest, ReviewView, TaskView};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;
use std::collections::BTreeMap;

/// Filters of `GET /reviews` (blank fields mean "any").
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListParams {
    page: Option<String>,
    status: Option<String>,
    project_id: Option<String>,
    start_date: Option<String>,
    end_date: Option<String>,
}

fn some(v: Option<&String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// `GET /reviews`.
pub async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(p): Query<ListParams>,
) -> PageResult {
    let page: u64 = match some(p.page.as_ref()) {
        Some(n) => n
            .parse()
            .map_err(|_| ApiError::bad_request("page must be a number"))?,
        None => 1,
    };
    let query = ListQuery {
        page: Some(page),
        page_size: Some(20),
        status: some(p.status.as_ref()),
        start_date: some(p.start_date.as_ref()),
        end_date: some(p.end_date.as_ref()),
        project_id: some(p.project_id.as_ref()),
    };
    let Json(env) = api::list(State(state.clone()), viewer.caller(), ApiQuery(query)).await?;
    let total_pages = env
        .meta
        .as_ref()
        .and_then(|m| m.pagination.as_ref())
        .map_or(1, |p| p.total_pages.max(1));
    let data = env.data.ok_or_else(|| ApiError::bad_request("no data"))?;
    let (projects, _) = state
        .store
        .list_projects(&ai_review_store::ProjectFilter {
            limit: 500,
            ..Default::default()
        })
        .await?;
    let mut project_opts = vec![(String::new(), "All projects".to_owned())];
    project_opts.extend(
        projects
            .iter()
            .map(|p| (p.id.as_str().to_owned(), p.path.clone())),
    );
    let status_opts: Vec<(String, String)> = ["", "pending", "completed", "failed", "cancelled"]
        .iter()
        .map(|s| {
            (
                (*s).to_owned(),
                if s.is_empty() {
                    "Any status".to_owned()
                } else {
                    (*s).to_owned()
                },
            )
        })
        .collect();
    let now = state.clock.now();
    let link = |n: u64| {
        let mut q = format!("/reviews?page={n}");
        for (k, v) in [
            ("status", &p.status),
            ("projectId", &p.project_id),
            ("startDate", &p.start_date),
            ("endDate", &p.end_date),
        ] {
            if let Some(v) = some(v.as_ref()) {
                q.push_str(&format!("&{k}={}", url_encode(&v)));
            }
        }
        q
    };
    let s = &data.stats;
    Ok(layout::page(
        &viewer,
        Section::Reviews,
        "Reviews",
        html! {
            div.cards {
                div.card { span.n { (s.total) } span.l { "total" } }
                div.card { span.n { (s.pending) } span.l { (badge("pending")) } }
                div.card { span.n { (s.completed) } span.l { (badge("completed")) } }
                div.card { span.n { (s.failed) } span.l { (badge("failed")) } }
                div.card { span.n { (s.cancelled) } span.l { (badge("cancelled")) } }
            }
            form.row.panel method="get" action="/reviews" aria-label="Filter reviews" {
                label for="status" { "Status" (layout::select("status", "status", &status_opts, p.status.as_deref().unwrap_or(""))) }
                label for="projectId" { "Project" (layout::select("projectId", "projectId", &project_opts, p.project_id.as_deref().unwrap_or(""))) }
                label for="startDate" { "From" input #startDate type="date" name="startDate" value=(p.start_date.clone().unwrap_or_default()); }
                label for="endDate" { "Before" input #endDate type="date" name="endDate" value=(p.end_date.clone().unwrap_or_default()); }
                button type="submit" { "Filter" }
            }
            @if data.items.is_empty() {
                p.panel { "No review matches." }
            } @else {
                table #reviews {
                    thead { tr {
                        th scope="col" { "Review" } th scope="col" { "Status" } th scope="col" { "Phase" }
                        th.num scope="col" { "Round" } th.num scope="col" { "Rating" }
                        th scope="col" { "Queued" } th scope="col" { "Took" }
                    } }
                    tbody {
                        @for r in &data.items {
                            tr {
                                td {
                                    a href={ "/reviews/" (r.id.as_str()) } { (r.title.clone().unwrap_or_else(|| short_repo(r))) }
                                    br;
                                    span.muted.mono { (short_sha(r.head_sha.as_str())) }
                                    @if let Some(n) = r.change_number { " · !" (n) }
                                }
                                td { (badge(r.task.state.as_str())) }
                                td { (r.task.phase.map_or("-", |p| p.as_str())) }
                                td.num { (r.round_number) }
                                td.num { (r.rating.map_or_else(|| "-".to_owned(), |x| format!("{x}/5"))) }
                                td { (ago(now, r.created_at)) }
                                td { (r.task.finished_at.map_or_else(|| "-".to_owned(), |f| duration(f.millis_since(r.created_at)))) }
                            }
                        }
                    }
                }
                nav.pager aria-label="Pages" {
                    @if page > 1 { a href=(link(page - 1)) rel="prev" { "← Newer" } }
                    span.muted { "Page " (page) " of " (total_pages) }
                    @if page < total_pages { a href=(link(page + 1)) rel="next" { "Older →" } }
                }
            }
            @if viewer.can(Permission::ReviewCreate) {
                details.panel {
                    summary { "Queue a review of a commit range" }
                    form.stack method="post" action="/reviews" {
                        (csrf(&viewer))
                        label for="repoUrl" { "Repository clone URL" input #repoUrl type="text" name="repoUrl" required placeholder="https://git.example.com/team/app.git"; }
                        label for="baseSha" { "Base commit (40 hex)" input #baseSha type="text" name="baseSha" required pattern="[0-9a-fA-F]{40}"; }
                        label for="headSha" { "Head commit (40 hex)" input #headSha type="text" name="headSha" required pattern="[0-9a-fA-F]{40}"; }
                        label for="title" { "Title (optional)" input #title type="text" name="title"; }
                        button type="submit" { "Queue review" }
                    }
                }
            }
        },
    ))
}

fn short_sha(s: &str) -> &str {
    &s[..s.len().min(10)]
}

fn short_repo(r: &ReviewView) -> String {
    let u = r.repo_url.as_str();
    u.rsplit('/')
        .next()
        .unwrap_or(u)
        .trim_end_matches(".git")
        .to_owned()
}

/// The "queue a review" form.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewReviewForm {
    repo_url: String,
    base_sha: String,
    head_sha: String,
    #[serde(default)]
    title: String,
}

/// `POST /reviews`: the API's `POST /api/reviews`, as the viewer.
pub async fn create(
    State(state): State<AppState>,
    posted: Posted<NewReviewForm>,
) -> PageResult<Response> {
    let f = posted.form;
    let req = CreateReviewRequest {
        repo_url: RepoUrl::parse(f.repo_url.trim())?,
        base_sha: CommitSha::parse(f.base_sha.trim())?,
        head_sha: CommitSha::parse(f.head_sha.trim())?,
        branch: None,
        title: Some(f.title.trim().to_owned()).filter(|t| !t.is_empty()),
        tags: Vec::new(),
        ai_config_id: None,
        template_id: None,
        excludes: Vec::new(),
    };
    let (_, Json(env)) = api::create(State(state), posted.viewer.caller(), ApiJson(req)).await?;
    let id = env
        .data
        .map(|r| r.id.as_str().to_owned())
        .ok_or_else(|| PageError::Api(ApiError::bad_request("the review was not queued")))?;
    Ok(see_other(&format!("/reviews/{id}")))
}

const PHASES: [&str; 4] = ["preparing", "cloning", "reviewing", "submitting"];

/// The status panel: state, phase timeline, attempts. Replaced live.
fn status_panel(now: ai_review_domain::Timestamp, r: &ReviewView) -> Markup {
    let t = &r.task;
    let current_attempt = t.attempt;
    let at = |kind: &str, detail: Option<&str>| {
        t.events
            .iter()
            .filter(|e| e.attempt == current_attempt || kind == "enqueued")
            .filter(|e| e.kind == kind && detail.is_none_or(|d| e.detail.starts_with(d)))
            .map(|e| e.at)
            .next_back()
    };
    let finished = t.state.is_terminal();
    let mut steps: Vec<(String, Option<ai_review_domain::Timestamp>, &str)> = Vec::new();
    steps.push((
        "queued".into(),
        at("enqueued", None).or(Some(r.created_at)),
        "done",
    ));
    steps.push((
        "picked up".into(),
        at("claimed", None),
        if t.state == TaskState::Pending {
            ""
        } else if t.state == TaskState::PickedUp {
            "current"
        } else {
            "done"
        },
    ));
    for p in PHASES {
        let when = at("phase", Some(p));
        let class = if !finished && t.phase.is_some_and(|c| c.as_str() == p) {
            "current"
        } else if when.is_some() {
            "done"
        } else {
            ""
        };
        steps.push((p.into(), when, class));
    }
    steps.push((
        if finished {
            t.state.as_str().replace('_', " ")
        } else {
            "result".to_owned()
        },
        t.finished_at,
        if finished { "done" } else { "" },
    ));
    html! {
        section #review-status .panel aria-labelledby="status-h" aria-live="polite" {
            h2 #status-h { "Status " (badge(t.state.as_str())) }
            ol.timeline aria-label="Phases" {
                @for (name, when, class) in &steps {
                    li class=(class) data-step=(name) {
                        (name)
                        small { (when.map_or_else(|| "–".to_owned(), layout::clock)) }
                    }
                }
            }
            @if let Some(reason) = &t.failure_reason { p.error { (reason) } }
            @if t.cancel_requested && !finished { p.muted { "Cancellation requested; the runner stops at its next heartbeat." } }
            p.muted {
                "Attempt " (t.attempt.0) " of " (t.max_attempts)
                @if let Some(rid) = &t.runner_id { " · runner " span.mono { (rid.as_str()) } }
                " · queued " (ago(now, r.created_at))
                @if let Some(f) = t.finished_at { " · took " (duration(f.millis_since(r.created_at))) }
            }
            @if t.attempts.len() > 1 {
                details {
                    summary { "Attempts (" (t.attempts.len()) ")" }
                    table {
                        thead { tr { th { "#" } th { "Runner" } th { "Claimed" } th { "Outcome" } th { "Reason" } } }
                        tbody { @for a in &t.attempts { tr {
                            td { (a.attempt.0) } td.mono { (a.runner_id.as_str()) } td { (time(a.claimed_at)) }
                            td { (a.outcome.clone().unwrap_or_else(|| "running".into())) } td { (a.reason.clone().unwrap_or_default()) }
                        } } }
                    }
                }
            }
        }
    }
}

fn row_class(c: &ai_review_executor::checks::ContextLine, f: &Finding) -> &'static str {
    let hit = c.line >= f.line && c.line <= f.end_line.max(f.line);
    match (c.changed, hit) {
        (true, true) => "changed hit",
        (true, false) => "changed",
        (false, true) => "hit",
        (false, false) => "",
    }
}

fn finding_card(f: &Finding) -> Markup {
    let sev = serde_json::to_value(f.severity)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    html! {
        article class={ "finding s-" (sev) } data-fingerprint=(f.fingerprint) {
            div.head {
                (badge(&sev))
                span.mono { "line " (f.line) @if f.end_line > f.line { "–" (f.end_line) } }
                span.muted { (f.category) " · " (f.rule_id) }
            }
            p.msg { (f.message) }
            @if !f.context.is_empty() {
                table.code aria-label={ "Code around line " (f.line) } {
                    tbody {
                        @for c in &f.context {
                            tr class=(row_class(c, f)) {
                                td.ln { (c.line) }
                                td { @if c.changed { "+" } @else { " " } (c.text) }
                            }
                        }
                    }
                }
            }
            @if let Some(s) = &f.suggestion {
                details { summary { "Suggested replacement" } pre.mono { (s) } }
            }
        }
    }
}

fn result_section(out: &ExecutorOutput) -> Markup {
    let mut by_file: BTreeMap<&str, Vec<&Finding>> = BTreeMap::new();
    for f in &out.findings {
        by_file.entry(f.file.as_str()).or_default().push(f);
    }
    html! {
        section.panel aria-labelledby="summary-h" {
            h2 #summary-h { "Summary"
                @if let Some(r) = out.rating { " · rating " (r) "/5" }
                @if let Some(a) = out.assessment {
                    " " (badge(serde_json::to_value(a).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default().as_str()))
                }
            }
            div.summary { (out.summary) }
            p.muted { (out.totals.files) " files, +" (out.totals.additions) " −" (out.totals.deletions) "; " (out.reviewed_lines) " changed lines reviewed by the model." }
        }
        section aria-labelledby="findings-h" {
            h2 #findings-h { "Findings (" (out.findings.len()) ")" }
            @if out.findings.is_empty() { p.panel { "No findings." } }
            @for (file, fs) in &by_file {
                section.file {
                    h3 { (file) " " span.muted { "(" (fs.len()) ")" } }
                    @for f in fs { (finding_card(f)) }
                }
            }
            @if !out.unanchored.is_empty() {
                h3 { "Not tied to a line of the diff" }
                @for f in &out.unanchored { (finding_card(f)) }
            }
        }
        @if !out.not_reviewed.is_empty() {
            section.panel aria-labelledby="nr-h" {
                h2 #nr-h { "Not reviewed (" (out.not_reviewed.len()) ")" }
                table #not-reviewed {
                    thead { tr { th { "File" } th { "Reason" } th { "Lines" } } }
                    tbody { @for n in &out.not_reviewed { tr {
                        td.mono { (n.path) } td { (n.reason) }
                        td { @if n.lines.is_empty() { "whole file" } @else {
                            @for l in &n.lines { (l.start) "–" (l.end) " " } } }
                    } } }
                }
            }
        }
        @if let Some(u) = &out.usage {
            section.panel aria-labelledby="usage-h" {
                h2 #usage-h { "Model usage" }
                dl.facts {
                    dt { "Model" } dd { (u.provider) " · " (u.model) }
                    dt { "Calls" } dd { (u.calls) " (" (u.cached_calls) " from cache, " (u.retries) " retries)" }
                    dt { "Tokens" } dd { (u.input_tokens) " in · " (u.output_tokens) " out" }
                    dt { "Billed" } dd { (u.billed_input_tokens) " in · " (u.billed_output_tokens) " out" }
                    dt { "Model time" } dd { (duration(i64::try_from(u.latency_ms).unwrap_or(i64::MAX))) }
                    @if let Some(c) = u.estimated_cost_usd { dt { "Estimated cost" } dd { (format!("${c:.4}")) } }
                }
            }
        } @else if let Some(ai) = &out.ai {
            p.muted { "Model review: " (serde_json::to_value(ai.status).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default())
                @if let Some(r) = &ai.reason { " (" (r) ")" } }
        }
    }
}

fn log_text(l: &ai_review_protocol::api::LogLineView) -> String {
    format!(
        "{} #{} {:<6} {}",
        layout::clock(l.at),
        l.attempt.0,
        l.stream,
        l.text
    )
}

/// `GET /reviews/:id`.
pub async fn detail(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> PageResult {
    let d = api::load_detail(&state, &ReviewId::parse(&id).map_err(ApiError::from)?).await?;
    let retried_as = d.review.retried_as.clone();
    let r = api::detail_view(d);
    let now = state.clock.now();
    let lines = state.store.task_logs(&r.task.id, 0, 5000).await?;
    let last_seq = lines.last().map_or(0, |l| l.seq);
    let lines: Vec<String> = lines
        .into_iter()
        .map(|l| log_text(&crate::routes::views::log_line(l)))
        .collect();
    let output: Option<Result<ExecutorOutput, String>> = r
        .task
        .result
        .clone()
        .filter(|_| r.task.state == TaskState::Completed)
        .map(|v| serde_json::from_value(v).map_err(|e| e.to_string()));
    let running = !r.task.state.is_terminal();
    let title = r
        .title
        .clone()
        .unwrap_or_else(|| format!("Review of {}", short_repo(&r)));
    let can_cancel = running
        && viewer.can(Permission::ReviewCreate)
        && (viewer.is_admin() || r.created_by == viewer.user.id);
    Ok(layout::page(
        &viewer,
        Section::Reviews,
        &title,
        html! {
            div data-live=[running.then(|| format!("/reviews/{}/live?after={last_seq}", r.id.as_str()))] {
                section.panel aria-labelledby="facts-h" {
                    h2.skip #facts-h { "Details" }
                    dl.facts {
                        dt { "Repository" } dd.mono { (r.repo_url.as_str()) }
                        @if let Some(b) = &r.branch { dt { "Branch" } dd.mono { (b) } }
                        dt { "Commits" } dd.mono { (short_sha(r.base_sha.as_str())) " → " (short_sha(r.head_sha.as_str())) }
                        @if let Some(n) = r.change_number { dt { "Merge/pull request" } dd { "!" (n) " · round " (r.round_number) } }
                        dt { "Queued" } dd { (time(r.created_at)) }
                        @if let Some(again) = &retried_as { dt { "Retried as" } dd { a href={ "/reviews/" (again.as_str()) } { (again.as_str()) } } }
                        @if let Some(p) = &r.push { dt { "Posted to the forge" } dd { (badge(&p.state)) @if let Some(e) = &p.error { " " span.muted { (e) } } } }
                    }
                    @if can_cancel {
                        form.inline method="post" action={ "/queue/tasks/" (r.task.id.as_str()) "/cancel" } {
                            (csrf(&viewer))
                            button.danger type="submit" { "Cancel review" }
                        }
                    }
                }
                (status_panel(now, &r))
                @match &output {
                    Some(Ok(out)) => { (result_section(out)) }
                    Some(Err(e)) => { p.error { "The stored result could not be read (" (e) "); the raw result is at " a href={ "/api/reviews/" (r.id.as_str()) } { "the API" } "." } }
                    None => {}
                }
                section.panel aria-labelledby="log-h" {
                    h2 #log-h { "Task log" @if running { " " span.live-dot { "live" } } }
                    pre.log #log tabindex="0" aria-label="Task log" {
                        @if lines.is_empty() { span #log-empty { "(no output yet)\n" } }
                        @for l in &lines { (l) "\n" }
                    }
                }
            }
        },
    ))
}

/// Query of the live stream: the last log line the page has.
#[derive(Debug, Deserialize)]
pub struct LiveQuery {
    after: Option<i64>,
}

struct LiveState {
    status_html: String,
    after: i64,
    done: bool,
}

fn view_task(r: &ReviewView) -> &TaskView {
    &r.task
}

/// `GET /reviews/:id/live`: the status panel when it changes, each new log
/// line, and `reload` once the review has finished and its log is drained.
pub async fn live(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(q): Query<LiveQuery>,
    headers: axum::http::HeaderMap,
) -> PageResult<Response> {
    // A reconnecting EventSource says which log line it saw last.
    let resumed = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok());
    let review = api::load(&state, &id).await?;
    let st = state.clone();
    let init = LiveState {
        status_html: String::new(),
        after: resumed.or(q.after).unwrap_or(0),
        done: false,
    };
    Ok(live::stream(
        &state,
        viewer.session,
        live::LOG_INTERVAL,
        init,
        move |mut ls: LiveState| {
            let state = st.clone();
            let review = review.clone();
            async move {
                if ls.done {
                    return None;
                }
                let r = api::detail(&state, &review.id).await.ok()?;
                let mut events = Vec::new();
                let html = status_panel(state.clock.now(), &r).into_string();
                if html != ls.status_html {
                    events.push(live::html_event("review-status", &html));
                    ls.status_html = html;
                }
                let lines = state
                    .store
                    .task_logs(&view_task(&r).id, ls.after, 500)
                    .await
                    .ok()?;
                let drained = lines.len() < 500;
                for l in lines {
                    ls.after = l.seq;
                    let seq = l.seq;
                    events.push(live::log_event(
                        seq,
                        &log_text(&crate::routes::views::log_line(l)),
                    ));
                }
                if r.task.state.is_terminal() && drained {
                    events.push(live::reload_event());
                    ls.done = true;
                }
                Some((events, ls))
            }
        },
    ))
}
