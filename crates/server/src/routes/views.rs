//! Store records → wire views.

use crate::config::millis;
use crate::secrets::SecretBox;
use ai_review_domain::{RunnerStatus, Timestamp};
use ai_review_protocol::api::{
    ApiKeyView, AttemptView, EventView, LogLineView, ReviewView, TaskView,
};
use ai_review_protocol::runner::{RunnerView, TaskAssignment};
use ai_review_store::{ApiKey, LogLine, Review, Runner, StoreError, Task, TaskAttempt, TaskEvent};
use std::time::Duration;

/// A runner as shown, `offline` as soon as its heartbeat is older than the
/// timeout (even before the reaper has written it).
pub fn runner(r: Runner, now: Timestamp, heartbeat_timeout: Duration) -> RunnerView {
    let silent = now.millis_since(r.last_heartbeat_at) > millis(heartbeat_timeout);
    RunnerView {
        status: if silent {
            RunnerStatus::Offline
        } else {
            r.status
        },
        id: r.id,
        name: r.name,
        version: r.version,
        max_concurrency: r.max_concurrency,
        tags: r.tags.to_vec(),
        active_jobs: r.active_jobs,
        registered_at: r.registered_at,
        last_heartbeat_at: r.last_heartbeat_at,
    }
}

/// A task as shown to users.
pub fn task(t: Task, attempts: Vec<TaskAttempt>, events: Vec<TaskEvent>) -> TaskView {
    TaskView {
        id: t.id,
        state: t.state,
        phase: t.phase,
        attempt: t.attempt,
        max_attempts: t.max_attempts,
        runner_id: t.runner_id,
        required_tags: t.required_tags.to_vec(),
        lease_expires_at: t.lease_expires_at,
        expires_at: t.expires_at,
        cancel_requested: t.cancel_requested,
        failure_reason: t.failure_reason,
        result: t.result,
        created_at: t.created_at,
        finished_at: t.finished_at,
        attempts: attempts
            .into_iter()
            .map(|a| AttemptView {
                attempt: a.attempt,
                runner_id: a.runner_id,
                claimed_at: a.claimed_at,
                finished_at: a.finished_at,
                outcome: a.outcome,
                reason: a.reason,
            })
            .collect(),
        events: events
            .into_iter()
            .map(|e| EventView {
                attempt: e.attempt,
                kind: e.kind,
                detail: e.detail,
                at: e.at,
            })
            .collect(),
    }
}

/// A review with its task; configuration ids from the task's spec, and
/// the applied rules, reviewed lines and rating from its result.
pub fn review(r: Review, spec: &serde_json::Value, task: TaskView) -> ReviewView {
    let result = task.result.as_ref();
    let str_at = |v: &serde_json::Value, a: &str, b: &str| {
        v.get(a)
            .and_then(|x| x.get(b))
            .and_then(|x| x.as_str())
            .map(str::to_owned)
    };
    ReviewView {
        round_number: r.round_number,
        push: None,
        project_id: r.change.as_ref().map(|c| c.project_id.to_string()),
        change_number: r.change.as_ref().map(|c| c.number),
        ai_config_id: str_at(spec, "aiConfig", "id"),
        template_id: str_at(spec, "template", "id"),
        applied_rule_ids: result
            .and_then(|r| r.get("appliedRuleIds"))
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default(),
        reviewed_lines: result
            .and_then(|r| r.get("reviewedLines"))
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0),
        rating: result
            .and_then(|r| r.get("rating"))
            .and_then(serde_json::Value::as_u64)
            .and_then(|v| u8::try_from(v).ok()),
        id: r.id,
        status: r.status,
        repo_url: r.repo_url,
        base_sha: r.base_sha,
        head_sha: r.head_sha,
        branch: r.branch,
        title: r.title,
        created_by: r.created_by,
        created_at: r.created_at,
        updated_at: r.updated_at,
        task,
    }
}

/// An API key (never the secret).
pub fn api_key(k: ApiKey) -> ApiKeyView {
    ApiKeyView {
        id: k.id,
        name: k.name,
        prefix: k.prefix,
        created_at: k.created_at,
        last_used_at: k.last_used_at,
        expires_at: k.expires_at,
        revoked_at: k.revoked_at,
    }
}

/// A claimed task as handed to its runner.
pub fn assignment(t: Task, secrets: &SecretBox) -> Result<TaskAssignment, StoreError> {
    let spec = crate::resolve::open_spec(t.spec, secrets)
        .map_err(|e| StoreError::Corrupt(format!("task {}: {e}", t.id)))?;
    Ok(TaskAssignment {
        lease_expires_at: t.lease_expires_at.unwrap_or(t.updated_at),
        task_id: t.id,
        attempt: t.attempt,
        max_attempts: t.max_attempts,
        required_tags: t.required_tags.to_vec(),
        spec,
    })
}

/// A log line.
pub fn log_line(l: LogLine) -> LogLineView {
    LogLineView {
        seq: l.seq,
        attempt: l.attempt,
        stream: l.stream,
        text: l.text,
        at: l.at,
    }
}
