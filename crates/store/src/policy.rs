//! Queue policy shared by every backend: given a task and what happened to
//! it, which state comes next and why. Backends only persist the decision,
//! so SQLite and PostgreSQL cannot drift apart on it.

use crate::{Task, TaskResult};
use ai_review_domain::{TaskOutcome, TaskState};

/// The state change a backend must write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The task's next state.
    pub state: TaskState,
    /// Reason recorded on the task (for failed, cancelled, expired).
    pub failure_reason: Option<String>,
    /// Event kind for the task history.
    pub event: &'static str,
    /// Event detail.
    pub detail: String,
    /// How the attempt ended, recorded on the attempt.
    pub attempt_outcome: &'static str,
}

impl Transition {
    /// Whether the task goes back to the queue.
    pub fn requeues(&self) -> bool {
        self.state == TaskState::Pending
    }
}

/// What a runner's result does to an active task.
pub fn on_result(task: &Task, result: &TaskResult) -> Transition {
    let reason = result.reason.clone();
    match result.outcome {
        TaskOutcome::Succeeded => Transition {
            state: TaskState::Completed,
            failure_reason: None,
            event: "completed",
            detail: format!("attempt {} succeeded", task.attempt),
            attempt_outcome: "succeeded",
        },
        TaskOutcome::Cancelled => Transition {
            state: TaskState::Cancelled,
            // A reason the server gave when it asked for the cancellation
            // (e.g. superseded by a newer review) wins over the runner's.
            failure_reason: Some(
                task.failure_reason
                    .clone()
                    .filter(|_| task.cancel_requested)
                    .or(reason)
                    .unwrap_or_else(|| "cancelled".into()),
            ),
            event: "cancelled",
            detail: "the runner stopped the task".into(),
            attempt_outcome: "cancelled",
        },
        TaskOutcome::Failed => {
            let reason = reason.unwrap_or_else(|| "failed without a reason".into());
            if task.cancel_requested {
                Transition {
                    state: TaskState::Cancelled,
                    failure_reason: Some(format!("cancelled by user ({reason})")),
                    event: "cancelled",
                    detail: reason,
                    attempt_outcome: "failed",
                }
            } else if result.retryable && task.attempt.0 < task.max_attempts {
                Transition {
                    state: TaskState::Pending,
                    failure_reason: None,
                    event: "requeued",
                    detail: format!(
                        "attempt {} of {} failed ({reason}); re-queued",
                        task.attempt, task.max_attempts
                    ),
                    attempt_outcome: "failed",
                }
            } else if result.retryable {
                Transition {
                    state: TaskState::Failed,
                    failure_reason: Some(format!(
                        "max_attempts_exceeded: attempt {} of {} failed: {reason}",
                        task.attempt, task.max_attempts
                    )),
                    event: "failed",
                    detail: reason,
                    attempt_outcome: "failed",
                }
            } else {
                Transition {
                    state: TaskState::Failed,
                    failure_reason: Some(reason.clone()),
                    event: "failed",
                    detail: reason,
                    attempt_outcome: "failed",
                }
            }
        }
    }
}

/// What happens to an active task whose lease ran out.
pub fn on_lease_expired(task: &Task) -> Transition {
    let runner = task
        .runner_id
        .as_ref()
        .map_or_else(|| "unknown".to_owned(), ToString::to_string);
    if task.cancel_requested {
        Transition {
            state: TaskState::Cancelled,
            failure_reason: Some(format!(
                "cancelled by user; runner {runner} stopped renewing its lease"
            )),
            event: "cancelled",
            detail: format!("lease of runner {runner} expired after cancellation"),
            attempt_outcome: "lease_expired",
        }
    } else if task.attempt.0 >= task.max_attempts {
        Transition {
            state: TaskState::Failed,
            failure_reason: Some(format!(
                "max_attempts_exceeded: lease expired on attempt {} of {} (runner {runner} stopped renewing it)",
                task.attempt, task.max_attempts
            )),
            event: "failed",
            detail: format!("lease of runner {runner} expired; no attempts left"),
            attempt_outcome: "lease_expired",
        }
    } else {
        Transition {
            state: TaskState::Pending,
            failure_reason: None,
            event: "requeued",
            detail: format!(
                "lease of runner {runner} expired on attempt {} of {}; re-queued",
                task.attempt, task.max_attempts
            ),
            attempt_outcome: "lease_expired",
        }
    }
}

/// The reason recorded on a task nobody claimed in time.
pub fn expiry_reason(task: &Task) -> String {
    format!(
        "expired: no runner with tags [{}] claimed it before {}",
        task.required_tags.to_vec().join(", "),
        task.expires_at
    )
}

/// How a batch of log lines fits under the per-task cap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPlan {
    /// How many lines from the start of the batch to store.
    pub accepted: u32,
    /// How many were dropped.
    pub dropped: u32,
    /// A marker line to store once, when the cap is first reached.
    pub marker: Option<String>,
    /// The task's log size afterwards (the cap itself once reached, so
    /// later batches are dropped without counting).
    pub new_log_bytes: i64,
}

impl LogPlan {
    /// The outcome reported to the runner.
    pub fn outcome(&self) -> crate::LogAppendOutcome {
        crate::LogAppendOutcome {
            accepted: self.accepted,
            dropped: self.dropped,
            truncated: self.dropped > 0,
        }
    }
}

/// Decides which lines of a batch are kept under `max_bytes` per task. A
/// line counts its text length plus one (the newline it stands for).
pub fn plan_log_append(current_bytes: i64, logs: &crate::LogAppend) -> LogPlan {
    let mut used = current_bytes;
    let mut accepted = 0u32;
    for line in &logs.lines {
        let size = i64::try_from(line.text.len())
            .unwrap_or(i64::MAX)
            .saturating_add(1);
        if used.saturating_add(size) > logs.max_bytes {
            break;
        }
        used += size;
        accepted += 1;
    }
    let total = u32::try_from(logs.lines.len()).unwrap_or(u32::MAX);
    let dropped = total - accepted;
    let already_full = current_bytes >= logs.max_bytes;
    let marker = (dropped > 0 && !already_full).then(|| {
        format!(
            "[ai-review] log truncated: this task reached its limit of {} bytes; later lines are dropped",
            logs.max_bytes
        )
    });
    LogPlan {
        accepted,
        dropped,
        marker,
        new_log_bytes: if dropped > 0 {
            logs.max_bytes.max(used)
        } else {
            used
        },
    }
}

/// Folds `(platform_type, webhook_status, enabled, count)` groups into
/// [`crate::ProjectStats`].
pub fn project_stats(
    rows: Vec<(String, String, bool, i64)>,
) -> Result<crate::ProjectStats, crate::StoreError> {
    use ai_review_domain::{PlatformType, WebhookStatus};
    let corrupt = |e: ai_review_domain::ParseError| crate::StoreError::Corrupt(e.to_string());
    let mut stats = crate::ProjectStats::default();
    let mut by_platform: std::collections::BTreeMap<&'static str, (PlatformType, u64)> =
        Default::default();
    let mut by_hook: std::collections::BTreeMap<&'static str, (WebhookStatus, u64)> =
        Default::default();
    for (platform, hook, enabled, n) in rows {
        let n = n.unsigned_abs();
        let platform = PlatformType::parse(&platform).map_err(corrupt)?;
        let hook = WebhookStatus::parse(&hook).map_err(corrupt)?;
        stats.total += n;
        if enabled {
            stats.enabled += n;
        }
        by_platform
            .entry(platform.as_str())
            .or_insert((platform, 0))
            .1 += n;
        by_hook.entry(hook.as_str()).or_insert((hook, 0)).1 += n;
    }
    stats.by_platform = by_platform.into_values().collect();
    stats.by_webhook_status = by_hook.into_values().collect();
    Ok(stats)
}

/// The columns a finished notification try writes (besides clearing the
/// lease and setting `updated_at`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationFinish {
    /// The status afterwards.
    pub status: ai_review_domain::NotificationStatus,
    /// The next try's time for a retry; `None` keeps the stored one.
    pub next_attempt_at: Option<ai_review_domain::Timestamp>,
    /// The error to record (`None` clears it).
    pub last_error: Option<String>,
    /// The delivery time for a sent notification.
    pub sent_at: Option<ai_review_domain::Timestamp>,
}

/// What the outcome of a notification try writes.
pub fn on_notification_outcome(
    outcome: crate::NotificationOutcome,
    now: ai_review_domain::Timestamp,
) -> NotificationFinish {
    use ai_review_domain::NotificationStatus;
    match outcome {
        crate::NotificationOutcome::Sent => NotificationFinish {
            status: NotificationStatus::Sent,
            next_attempt_at: None,
            last_error: None,
            sent_at: Some(now),
        },
        crate::NotificationOutcome::Retry { at, error } => NotificationFinish {
            status: NotificationStatus::Pending,
            next_attempt_at: Some(at),
            last_error: Some(error),
            sent_at: None,
        },
        crate::NotificationOutcome::Failed { error } => NotificationFinish {
            status: NotificationStatus::Failed,
            next_attempt_at: None,
            last_error: Some(error),
            sent_at: None,
        },
    }
}

/// Folds `(channel, status, count)` groups into
/// [`crate::NotificationStats`], in channel then status declaration order.
pub fn notification_stats(
    rows: Vec<(String, String, i64)>,
) -> Result<crate::NotificationStats, crate::StoreError> {
    use ai_review_domain::{NotificationChannel, NotificationStatus};
    let corrupt = |e: ai_review_domain::ParseError| crate::StoreError::Corrupt(e.to_string());
    let mut counts = rows
        .into_iter()
        .map(|(channel, status, n)| {
            Ok((
                NotificationChannel::parse(&channel).map_err(corrupt)?,
                NotificationStatus::parse(&status).map_err(corrupt)?,
                n.unsigned_abs(),
            ))
        })
        .collect::<Result<Vec<_>, crate::StoreError>>()?;
    let rank = |c: NotificationChannel, s: NotificationStatus| {
        (
            NotificationChannel::ALL.iter().position(|x| *x == c),
            NotificationStatus::ALL.iter().position(|x| *x == s),
        )
    };
    counts.sort_by_key(|&(c, s, _)| rank(c, s));
    Ok(crate::NotificationStats { counts })
}

/// The error of a `finish_notification` whose `UPDATE … WHERE status =
/// 'pending'` changed no row, given the status read back (`None`: there is
/// no such notification).
pub fn notification_not_pending(
    id: &ai_review_domain::NotificationId,
    status: Option<String>,
) -> crate::StoreError {
    match status {
        None => crate::StoreError::not_found("notification", id),
        Some(status) => crate::StoreError::Conflict(format!(
            "notification {id} is already {status}; its outcome is final"
        )),
    }
}

/// The order in which a batch of notifications is inserted: by dedup key
/// (a stable sort, so of two items with one key the first given wins),
/// each with its position in the batch. Two replicas enqueueing
/// overlapping batches in different orders then take the key locks in the
/// same order and wait for each other instead of deadlocking.
pub fn notification_insert_order(
    items: &[crate::NewNotification],
) -> Vec<(usize, &crate::NewNotification)> {
    let mut order: Vec<_> = items.iter().enumerate().collect();
    order.sort_by(|(_, a), (_, b)| a.dedup_key.cmp(&b.dedup_key));
    order
}
