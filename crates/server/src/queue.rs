//! The queue's moving parts in the server: wake-ups for long-polling
//! runners (in process, and across replicas through the store's
//! announcements), and the reaper that enforces leases, expiry and runner
//! liveness and deletes expired sessions and rate-limit windows, once per
//! period across replicas.

use crate::app::AppState;
use crate::config::millis;
use ai_review_store::StoreResult;
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

/// Tasks became claimable here (enqueue, re-queue): wakes this process's
/// long-polls at once and announces it to the other replicas (PostgreSQL
/// `NOTIFY`, sent after the enqueue committed). A failed announcement only
/// costs the other replicas their poll re-check interval.
pub async fn tasks_ready(state: &AppState) {
    state.wake.wake_all();
    if let Err(e) = state.store.announce_tasks().await {
        tracing::warn!(error = %e, "could not announce new tasks to other replicas; they find them at their next re-check");
    }
}

/// Relays the store's cross-replica task announcements to this process's
/// long-polls until shutdown. Returns at once on a single-process store.
pub async fn relay_announcements(state: AppState) {
    let mut ann = match state.store.task_announcements().await {
        Ok(Some(a)) => a,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for other replicas' tasks; long-polls re-check every interval instead");
            return;
        }
    };
    let mut shutdown = state.shutdown.clone();
    loop {
        tokio::select! {
            got = ann.next() => match got {
                Some(()) => state.wake.wake_all(),
                None => return,
            },
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}

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
        tasks_ready(state).await;
    }
    state
        .metrics
        .inc("ai_review_reaper_runs_total", Vec::new(), 1);
    for (what, n) in [
        ("requeued", report.requeued.len()),
        ("failed", report.failed.len()),
    ] {
        if n > 0 {
            state.metrics.inc(
                "ai_review_task_lease_expiries_total",
                vec![("outcome", what.to_owned())],
                n as u64,
            );
        }
    }
    for id in &report.requeued {
        tracing::warn!(task.id = %id, "lease expired; task re-queued");
    }
    for id in &report.failed {
        tracing::warn!(task.id = %id, "lease expired on the last attempt; task failed");
        if let Some(task) = state.store.get_task(id).await? {
            crate::metrics::task_finished(state, &task).await;
            crate::notify::task_finished(state, &task).await;
        }
    }
    let expired = state.store.expire_unclaimed(now).await?;
    for id in &expired {
        tracing::warn!(task.id = %id, "task expired unclaimed");
        if let Some(task) = state.store.get_task(id).await? {
            crate::metrics::task_finished(state, &task).await;
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
    let windows = state.store.delete_expired_rate_limit_windows(now).await?;
    if windows > 0 {
        tracing::debug!(windows, "expired rate-limit windows deleted");
    }
    Ok(ReaperPass {
        requeued: report.requeued.len(),
        failed: report.failed.len(),
        cancelled: report.cancelled.len(),
        expired: expired.len(),
        runners_offline: offline.len(),
    })
}

/// The name under which reaper passes are counted across replicas.
pub const REAPER_JOB: &str = "reaper";

/// Runs [`reap_once`] every `reaper_interval` until shutdown, skipping the
/// ticks another replica already took: the store hands each period (nine
/// tenths of the interval, so timer jitter never skips a whole period) to
/// one replica only.
pub async fn run_reaper(state: AppState) {
    let mut shutdown = state.shutdown.clone();
    let mut tick = tokio::time::interval(state.settings.reaper_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let period = millis(state.settings.reaper_interval) * 9 / 10;
                match state.store.try_start_periodic(REAPER_JOB, state.clock.now(), period).await {
                    Ok(true) => {
                        if let Err(e) = reap_once(&state).await {
                            tracing::error!(error = %e, "reaper pass failed; retrying next tick");
                        }
                    }
                    Ok(false) => {}
                    Err(e) => tracing::error!(error = %e, "reaper: the database did not answer; retrying next tick"),
                }
            }
            _ = shutdown.changed() => break,
        }
    }
}
