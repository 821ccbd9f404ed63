//! The runner protocol (see `ai_review_protocol::runner` for the contract).
//!
//! Every call needs an API key. A runner id belongs to the user whose key
//! registered it: heartbeats, polls and task calls for it with another
//! user's key are 403. Task calls must present the claim's attempt
//! (fencing value); a stale one is 409 and changes nothing.

use crate::app::{AppState, ok};
use crate::auth::Caller;
use crate::config::millis;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery};
use crate::routes::views;
use ai_review_domain::{RunnerId, TagSet, TaskId, TaskState, Timestamp};
use ai_review_protocol::Envelope;
use ai_review_protocol::runner::*;
use ai_review_store::{
    Claim, Heartbeat, LogAppend, LogLine, PhaseReport, Runner, RunnerRegistration, TaskRef,
    TaskResult,
};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use tokio::time::Instant;

fn header<'a>(headers: &'a HeaderMap, name: &str) -> ApiResult<Option<&'a str>> {
    headers
        .get(name)
        .map(|v| {
            v.to_str()
                .map(str::trim)
                .map_err(|_| ApiError::bad_request(format!("header {name} is not valid text")))
        })
        .transpose()
}

fn plain_text(name: &str, v: &str, max: usize) -> ApiResult<String> {
    if v.is_empty() || v.chars().count() > max || v.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "{name} must be 1-{max} printable characters"
        )));
    }
    Ok(v.to_owned())
}

/// `POST /api/runners/register`: upsert by `x-runner-id`.
pub async fn register(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
) -> ApiResult<Json<Envelope<RegisterResponse>>> {
    let id = header(&headers, HEADER_RUNNER_ID)?.ok_or_else(|| {
        ApiError::bad_request(format!(
            "missing {HEADER_RUNNER_ID} header: every runner needs a stable id"
        ))
    })?;
    let id = RunnerId::parse(id)?;
    let name = match header(&headers, HEADER_RUNNER_NAME)? {
        Some(n) => plain_text(HEADER_RUNNER_NAME, n, 100)?,
        None => id.to_string(),
    };
    let version = match header(&headers, HEADER_RUNNER_VERSION)? {
        Some(v) => plain_text(HEADER_RUNNER_VERSION, v, 64)?,
        None => "unknown".to_owned(),
    };
    let max_concurrency = match header(&headers, HEADER_RUNNER_MAX_CONCURRENCY)? {
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "{HEADER_RUNNER_MAX_CONCURRENCY} must be a whole number from 1 to 1000, got {v:?}"
                ))
            })?,
        None => DEFAULT_MAX_CONCURRENCY,
    };
    let tags = match header(&headers, HEADER_RUNNER_TAGS)? {
        Some(t) => TagSet::parse_comma_list(t)?,
        None => TagSet::default(),
    };
    let runner = state
        .store
        .register_runner(RunnerRegistration {
            id,
            name,
            version,
            max_concurrency,
            tags,
            owner: caller.user.id.clone(),
            now: state.clock.now(),
        })
        .await?;
    tracing::info!(runner.id = %runner.id, runner.version = %runner.version, "runner registered");
    let s = &state.settings;
    Ok(ok(RegisterResponse {
        runner: views::runner(runner, state.clock.now(), s.heartbeat_timeout),
        lease_duration_ms: millis(s.lease).unsigned_abs(),
        heartbeat_timeout_ms: millis(s.heartbeat_timeout).unsigned_abs(),
        max_poll_wait_ms: millis(s.max_poll_wait).unsigned_abs(),
    }))
}

/// Loads a runner and checks the caller's key may act for it.
async fn runner_for_caller(state: &AppState, caller: &Caller, id: &RunnerId) -> ApiResult<Runner> {
    let runner = state.store.get_runner(id).await?.ok_or_else(|| {
        ApiError::not_found(format!(
            "runner {id} is not registered; call POST /api/runners/register first"
        ))
    })?;
    if runner.owner != caller.user.id {
        return Err(ApiError::forbidden(format!(
            "runner {id} was registered with another user's API key"
        )));
    }
    Ok(runner)
}

/// Checks the caller's key may act for runner `id`, from the ownership
/// cache when possible.
async fn check_owner(state: &AppState, caller: &Caller, id: &RunnerId) -> ApiResult<()> {
    let cached = state
        .runner_owners
        .read()
        .map_err(|_| ApiError::internal(&std::io::Error::other("runner owner cache poisoned")))?
        .get(id)
        .cloned();
    let owner = match cached {
        Some(o) => o,
        None => {
            let runner = runner_for_caller(state, caller, id).await?;
            if let Ok(mut m) = state.runner_owners.write() {
                m.insert(runner.id, runner.owner.clone());
            }
            runner.owner
        }
    };
    if owner != caller.user.id {
        return Err(ApiError::forbidden(format!(
            "runner {id} was registered with another user's API key"
        )));
    }
    Ok(())
}

/// `GET /api/runners`: newest heartbeat first.
pub async fn list(
    State(state): State<AppState>,
    _caller: Caller,
) -> ApiResult<Json<Envelope<Vec<RunnerView>>>> {
    let now = state.clock.now();
    let runners = state.store.list_runners().await?;
    Ok(ok(runners
        .into_iter()
        .map(|r| views::runner(r, now, state.settings.heartbeat_timeout))
        .collect()))
}

/// `GET /api/runners/:id`.
pub async fn get_one(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Envelope<RunnerView>>> {
    let id = RunnerId::parse(&id)?;
    let runner = state
        .store
        .get_runner(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("runner {id} not found")))?;
    Ok(ok(views::runner(
        runner,
        state.clock.now(),
        state.settings.heartbeat_timeout,
    )))
}

/// `POST /api/runners/:id/heartbeat`.
pub async fn heartbeat(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<HeartbeatRequest>,
) -> ApiResult<Json<Envelope<HeartbeatResponse>>> {
    let id = RunnerId::parse(&id)?;
    check_owner(&state, &caller, &id).await?;
    let now = state.clock.now();
    let lease_until = now.plus_millis(millis(state.settings.lease));
    let out = state
        .store
        .heartbeat(Heartbeat {
            runner_id: id,
            status: req.status,
            active_jobs: req.active_jobs,
            now,
            lease_until,
        })
        .await?;
    Ok(ok(HeartbeatResponse {
        status: out.runner.status,
        renewed_task_ids: out.renewed,
        cancel_task_ids: out.cancel,
        lease_expires_at: lease_until,
    }))
}

/// `GET /api/runners/tasks/pending?runnerId=&limit=&wait=`: claims up to
/// `limit` tasks for the runner; with nothing pending, holds the request up
/// to `wait` ms and answers the moment a task is enqueued.
pub async fn pending(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<PendingQuery>,
) -> ApiResult<Json<Envelope<Vec<TaskAssignment>>>> {
    let id = RunnerId::parse(&q.runner_id)?;
    let limit = q.limit.unwrap_or(1);
    if !(1..=MAX_POLL_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be from 1 to {MAX_POLL_LIMIT}, got {limit}"
        )));
    }
    let runner = runner_for_caller(&state, &caller, &id).await?;
    let wait =
        std::time::Duration::from_millis(q.wait.unwrap_or(0)).min(state.settings.max_poll_wait);
    let deadline = Instant::now() + wait;
    let mut shutdown = state.shutdown.clone();
    loop {
        // Register interest before looking, so a wake-up between the look
        // and the wait is not lost.
        let notified = state.wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let now = state.clock.now();
        let tasks = state
            .store
            .claim_tasks(Claim {
                runner_id: runner.id.clone(),
                runner_tags: runner.tags.clone(),
                limit,
                now,
                lease_until: now.plus_millis(millis(state.settings.lease)),
            })
            .await?;
        if !tasks.is_empty() {
            state.metrics.inc(
                "ai_review_task_claims_total",
                Vec::new(),
                tasks.len() as u64,
            );
            for t in &tasks {
                tracing::info!(task.id = %t.id, runner.id = %runner.id, task.attempt = %t.attempt, "task claimed");
            }
            let out = tasks
                .into_iter()
                .map(|t| views::assignment(t, &state.settings.secrets))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(ok(out));
        }
        let now_i = Instant::now();
        if now_i >= deadline || *shutdown.borrow() {
            return Ok(ok(Vec::new()));
        }
        let recheck = (now_i + state.settings.poll_recheck).min(deadline);
        tokio::select! {
            _ = &mut notified => {}
            _ = tokio::time::sleep_until(recheck) => {}
            _ = shutdown.changed() => return Ok(ok(Vec::new())),
        }
    }
}

fn task_id(id: &str) -> ApiResult<TaskId> {
    Ok(TaskId::parse(id)?)
}

async fn task_ref(
    state: &AppState,
    caller: &Caller,
    id: &str,
    runner_id: RunnerId,
    attempt: ai_review_domain::Attempt,
) -> ApiResult<TaskRef> {
    let task_id = task_id(id)?;
    check_owner(state, caller, &runner_id).await?;
    Ok(TaskRef {
        task_id,
        runner_id,
        attempt,
    })
}

/// `POST /api/runners/tasks/:id/status`: reports a phase, renews the lease.
pub async fn status(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<PhaseRequest>,
) -> ApiResult<Json<Envelope<TaskStatusResponse>>> {
    let r = task_ref(&state, &caller, &id, req.runner_id, req.attempt).await?;
    let now = state.clock.now();
    let task = state
        .store
        .report_phase(
            &r,
            PhaseReport {
                phase: req.phase,
                now,
                lease_until: now.plus_millis(millis(state.settings.lease)),
            },
        )
        .await?;
    tracing::info!(task.id = %task.id, task.phase = %req.phase, runner.id = %r.runner_id, "phase");
    Ok(ok(TaskStatusResponse {
        task_id: task.id,
        state: task.state,
        phase: task.phase,
        lease_expires_at: task.lease_expires_at,
        cancel_requested: task.cancel_requested,
    }))
}

/// `POST /api/runners/tasks/:id/logs`: appends a batch, capped per task.
pub async fn logs(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<LogsRequest>,
) -> ApiResult<Json<Envelope<LogsResponse>>> {
    if req.lines.len() > MAX_LOG_LINES_PER_BATCH {
        return Err(ApiError::bad_request(format!(
            "at most {MAX_LOG_LINES_PER_BATCH} lines per batch, got {}",
            req.lines.len()
        )));
    }
    let now = state.clock.now();
    let mut lines = Vec::with_capacity(req.lines.len());
    for l in req.lines {
        let stream = l.stream.unwrap_or_else(|| "stdout".into());
        if !matches!(stream.as_str(), "stdout" | "stderr" | "runner") {
            return Err(ApiError::bad_request(format!(
                "stream must be stdout, stderr or runner, got {stream:?}"
            )));
        }
        lines.push(LogLine {
            seq: 0,
            attempt: req.attempt,
            stream,
            text: cut(l.text, MAX_LOG_LINE_BYTES),
            at: l.at.unwrap_or(now),
        });
    }
    let r = task_ref(&state, &caller, &id, req.runner_id, req.attempt).await?;
    let max_bytes = i64::try_from(state.settings.task_log_max_bytes).unwrap_or(i64::MAX);
    let out = state
        .store
        .append_logs(
            &r,
            LogAppend {
                lines,
                max_bytes,
                now,
            },
        )
        .await?;
    Ok(ok(LogsResponse {
        accepted: out.accepted,
        dropped: out.dropped,
        truncated: out.truncated,
    }))
}

fn cut(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

/// `POST /api/runners/tasks/:id/result`: ends the attempt; idempotent.
pub async fn result(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ResultRequest>,
) -> ApiResult<Json<Envelope<ResultResponse>>> {
    if let Some(reason) = &req.reason
        && reason.len() > 4096
    {
        return Err(ApiError::bad_request("reason must be at most 4096 bytes"));
    }
    let r = task_ref(&state, &caller, &id, req.runner_id, req.attempt).await?;
    let now: Timestamp = state.clock.now();
    let out = state
        .store
        .submit_result(
            &r,
            TaskResult {
                outcome: req.outcome,
                reason: req.reason,
                retryable: req.retryable,
                output: req.output,
                now,
                requeue_expires_at: now.plus_millis(millis(state.settings.unclaimed_expiry)),
            },
        )
        .await?;
    if out.task.state == TaskState::Pending {
        crate::queue::tasks_ready(&state).await;
    }
    if out.task.state.is_terminal() && !out.duplicate {
        crate::metrics::task_finished(&state, &out.task).await;
        crate::notify::task_finished(&state, &out.task).await;
    }
    if !out.duplicate {
        tracing::info!(
            task.id = %out.task.id,
            task.state = %out.task.state,
            task.attempt = %r.attempt,
            runner.id = %r.runner_id,
            "result reported"
        );
    }
    Ok(ok(ResultResponse {
        task_id: out.task.id,
        state: out.task.state,
        duplicate: out.duplicate,
    }))
}
