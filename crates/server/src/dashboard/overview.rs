//! `/`: the fleet and the queue at a glance, with charts of the last 24
//! hours computed from task timings.

use super::charts::{self, Point};
use super::layout::{self, Section, badge, duration, trusted};
use super::{PageResult, Viewer};
use crate::app::AppState;
use crate::routes::views;
use ai_review_domain::{RunnerStatus, TaskState, Timestamp};
use ai_review_store::TaskTiming;
use axum::extract::State;
use maud::html;

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
/// Most task timings read for the charts (about a busy day's worth).
const TIMINGS_LIMIT: u32 = 50_000;

/// What the overview shows, computed from task timings.
#[derive(Debug, Default, PartialEq)]
pub struct DayStats {
    /// Reviews queued since 00:00 UTC.
    pub reviews_today: u64,
    /// Completed in the window.
    pub completed: u64,
    /// Failed or expired in the window (cancelled ones are not failures).
    pub failed: u64,
    /// Waiting tasks at each half hour of the window.
    pub depth: Vec<(Timestamp, u64)>,
    /// Median run time (first claim → finish) of tasks completed in each hour.
    pub median_run_ms: Vec<(Timestamp, i64)>,
}

impl DayStats {
    /// Failed share of finished reviews, if any finished.
    pub fn failure_rate(&self) -> Option<f64> {
        let n = self.completed + self.failed;
        (n > 0).then(|| self.failed as f64 / n as f64)
    }
}

/// Computes the overview's numbers over the 24 hours before `now`.
pub fn day_stats(timings: &[TaskTiming], now: Timestamp) -> DayStats {
    let since = now.plus_millis(-DAY_MS);
    let midnight = Timestamp::from_millis(now.as_millis() - now.as_millis().rem_euclid(DAY_MS));
    let mut s = DayStats::default();
    for t in timings {
        if t.created_at >= midnight {
            s.reviews_today += 1;
        }
        if t.finished_at.is_some_and(|f| f >= since) {
            match t.state {
                TaskState::Completed => s.completed += 1,
                TaskState::Failed | TaskState::Expired => s.failed += 1,
                _ => {}
            }
        }
    }
    for i in 0..=48 {
        let at = since.plus_millis(i * HOUR_MS / 2);
        let waiting = timings
            .iter()
            .filter(|t| {
                t.created_at <= at
                    && t.started_at.is_none_or(|s| s > at)
                    && t.finished_at.is_none_or(|f| f > at)
            })
            .count() as u64;
        s.depth.push((at, waiting));
    }
    for h in 0..24 {
        let from = since.plus_millis(h * HOUR_MS);
        let to = from.plus_millis(HOUR_MS);
        let mut runs: Vec<i64> = timings
            .iter()
            .filter(|t| t.state == TaskState::Completed)
            .filter_map(|t| {
                let f = t.finished_at.filter(|f| *f >= from && *f < to)?;
                Some(f.millis_since(t.started_at?))
            })
            .collect();
        runs.sort_unstable();
        s.median_run_ms
            .push((to, runs.get(runs.len() / 2).copied().unwrap_or(0)));
    }
    s
}

fn hh_mm(t: Timestamp) -> String {
    chrono::DateTime::from_timestamp_millis(t.as_millis())
        .map_or_else(String::new, |d| d.format("%H:%M").to_string())
}

/// `GET /`.
pub async fn page(State(state): State<AppState>, viewer: Viewer) -> PageResult {
    let now = state.clock.now();
    let counts = state.store.queue_counts().await?;
    let count = |s: TaskState| counts.iter().find(|(k, _)| *k == s).map_or(0, |(_, n)| *n);
    let runners: Vec<_> = state
        .store
        .list_runners()
        .await?
        .into_iter()
        .map(|r| views::runner(r, now, state.settings.heartbeat_timeout))
        .collect();
    let by_status = |s: RunnerStatus| runners.iter().filter(|r| r.status == s).count();
    let timings = state
        .store
        .task_timings(now.plus_millis(-DAY_MS), TIMINGS_LIMIT)
        .await?;
    let day = day_stats(&timings, now);
    let depth: Vec<Point> = day
        .depth
        .iter()
        .map(|(t, n)| Point {
            label: hh_mm(*t),
            value: *n as f64,
        })
        .collect();
    let runs: Vec<Point> = day
        .median_run_ms
        .iter()
        .map(|(t, ms)| Point {
            label: hh_mm(*t),
            value: *ms as f64 / 1000.0,
        })
        .collect();
    let rate = day
        .failure_rate()
        .map_or_else(|| "–".to_owned(), |r| format!("{:.1} %", r * 100.0));
    Ok(layout::page(
        &viewer,
        Section::Overview,
        "Overview",
        html! {
            section aria-labelledby="queue-h" {
                h2 #queue-h { "Queue" }
                div.cards {
                    @for s in TaskState::ALL {
                        a.card href="/queue" {
                            span.n { (count(*s)) }
                            span.l { (badge(s.as_str())) }
                        }
                    }
                }
            }
            section aria-labelledby="fleet-h" {
                h2 #fleet-h { "Runners and reviews" }
                div.cards {
                    a.card href="/runners" { span.n { (by_status(RunnerStatus::Online)) } span.l { "runners online" } }
                    a.card href="/runners" { span.n { (by_status(RunnerStatus::Busy)) } span.l { "runners busy" } }
                    a.card href="/runners" { span.n { (by_status(RunnerStatus::Offline)) } span.l { "runners offline" } }
                    a.card href="/reviews" { span.n #reviews-today { (day.reviews_today) } span.l { "reviews today (UTC)" } }
                    div.card { span.n #failure-rate { (rate) } span.l { "failure rate, last 24 h (" (day.failed) " of " (day.completed + day.failed) ")" } }
                }
            }
            div.grid2 {
                section.panel aria-labelledby="depth-h" {
                    h2 #depth-h { "Queue depth, last 24 h" }
                    (trusted(charts::line("Waiting tasks every 30 minutes over the last 24 hours", "", &depth)))
                }
                section.panel aria-labelledby="dur-h" {
                    h2 #dur-h { "Review duration, last 24 h" }
                    (trusted(charts::bars("Median run time of completed reviews per hour", " s", &runs)))
                    p.muted { "From first claim to result; hours without a completed review are empty. Longest median: "
                        (duration(day.median_run_ms.iter().map(|(_, m)| *m).max().unwrap_or(0))) "." }
                }
            }
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ai_review_domain::TaskId;

    fn t(
        created: i64,
        started: Option<i64>,
        finished: Option<i64>,
        state: TaskState,
    ) -> TaskTiming {
        TaskTiming {
            task_id: TaskId::generate(),
            state,
            created_at: Timestamp::from_millis(created),
            started_at: started.map(Timestamp::from_millis),
            finished_at: finished.map(Timestamp::from_millis),
        }
    }

    #[test]
    fn day_stats_count_today_failures_depth_and_medians() {
        let now = 10 * DAY_MS + 12 * HOUR_MS; // 12:00 UTC
        let timings = [
            // yesterday 13:00, completed after 10 s of work
            t(
                now - 23 * HOUR_MS,
                Some(now - 23 * HOUR_MS + 1000),
                Some(now - 23 * HOUR_MS + 11_000),
                TaskState::Completed,
            ),
            // today 11:00, failed
            t(
                now - HOUR_MS,
                Some(now - HOUR_MS + 500),
                Some(now - HOUR_MS + 2500),
                TaskState::Failed,
            ),
            // today, waiting for 2 hours and still pending
            t(now - 2 * HOUR_MS, None, None, TaskState::Pending),
            // today, cancelled: not a failure
            t(
                now - 30 * 60_000,
                None,
                Some(now - 20 * 60_000),
                TaskState::Cancelled,
            ),
        ];
        let s = day_stats(&timings, Timestamp::from_millis(now));
        assert_eq!(s.reviews_today, 3);
        assert_eq!((s.completed, s.failed), (1, 1));
        assert_eq!(s.failure_rate(), Some(0.5));
        assert_eq!(s.depth.len(), 49);
        assert_eq!(
            s.depth.last().map(|d| d.1),
            Some(1),
            "only the pending one waits now"
        );
        assert_eq!(s.depth[0].1, 0);
        assert_eq!(s.median_run_ms.iter().filter(|(_, m)| *m > 0).count(), 1);
        assert!(s.median_run_ms.iter().any(|(_, m)| *m == 10_000));
    }
}
