//! The queue's moving parts in the server: in-process wake-ups for
//! long-polling runners, and the reaper that enforces leases, expiry and
//! runner liveness.

use crate::app::AppState;
use crate::config::millis;
use ai_review_store::StoreResult;
use std::time::Duration;
use tokio::sync::Notify;

/// Wakes long-polling runners when tasks become claimable in this process
/// (enqueue, re-queue). Waiters also re-check periodically, which covers
/// tasks made claimable elsewhere (another replica).
#[derive(Debug, Default)]
pub struct TaskWake {
    notify: Notify,
}

impl TaskWake {
    /// Wakes every waiting poll.
    pub fn wake_all(&self) {
        self.notify.notify_waiters();
    }

    /// A future completing at the next [`TaskWake::wake_all`].
    pub fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.notify.notified()
    }
}

/// How often a waiting long-poll re-checks the queue without a wake-up.
pub const POLL_RECHECK: Duration = Duration::from_millis(1_000);

/// What one reaper pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReaperPass {
    /// Tasks back in the queue after their lease expired.
    pub requeued: usize,
    /// Tasks failed for good (out of attempts).
    pub failed: usize,
    /// Tasks cancelled (cancellation asked, runner silent).
    pub cancelled: usize,
    /// Pending tasks expired unclaimed.
    pub expired: usize,
    /// Runners marked offline.
    pub runners_offline: usize,
}

/// One pass of the reaper, at the clock's current time.
pub async fn reap_once(state: &AppState) -> StoreResult<ReaperPass> {
    let now = state.clock.now();
    let s = &state.settings;
    let report = state
        .store
        .reap_expired_leases(now, now.plus_millis(millis(s.unclaimed_expiry)))
        .await?;
    if !report.requeued.is_empty() {
        state.wake.wake_all();
    }
    for id in &report.requeued {
        tracing::warn!(task.id = %id, "lease expired; task re-queued");
    }
    for id in &report.failed {
        tracing::warn!(task.id = %id, "lease expired on the last attempt; task failed");
        if let Some(task) = state.store.get_task(id).await? {
            crate::notify::task_finished(state, &task).await;
        }
    }
    let expired = state.store.expire_unclaimed(now).await?;
    for id in &expired {
        tracing::warn!(task.id = %id, "task expired unclaimed");
        if let Some(task) = state.store.get_task(id).await? {
            crate::notify::task_finished(state, &task).await;
        }
    }
    let offline = state
        .store
        .mark_silent_runners_offline(now.plus_millis(-millis(s.heartbeat_timeout)), now)
        .await?;
    for id in &offline {
        tracing::warn!(runner.id = %id, "runner silent past RUNNER_HEARTBEAT_TIMEOUT_MS; marked offline");
    }
    if let Some(l) = &state.limiter {
        l.sweep();
    }
    let sessions = state.store.delete_expired_sessions(now).await?;
    if sessions > 0 {
        tracing::debug!(sessions, "expired dashboard sessions deleted");
    }
    Ok(ReaperPass {
        requeued: report.requeued.len(),
        failed: report.failed.len(),
        cancelled: report.cancelled.len(),
        expired: expired.len(),
        runners_offline: offline.len(),
    })
}

/// Runs [`reap_once`] every `reaper_interval` until shutdown.
pub async fn run_reaper(state: AppState) {
    let mut shutdown = state.shutdown.clone();
    let mut tick = tokio::time::interval(state.settings.reaper_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = reap_once(&state).await {
                    tracing::error!(error = %e, "reaper pass failed; retrying next tick");
                }
            }
            _ = shutdown.changed() => break,
        }
    }
}
