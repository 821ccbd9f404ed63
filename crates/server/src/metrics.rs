//! Prometheus metrics (`GET /metrics`, text exposition format 0.0.4).
//!
//! Each server has its own registry ([`registry`]) in its state rather
//! than a process-global recorder: several servers run in one process (the
//! tests, `ai-review review`'s embedded server), and each must count only
//! its own requests. Counters and histograms are kept here as they
//! happen; the queue and runner gauges are read from the store at scrape
//! time, so every replica reports the same, shared queue.
//!
//! Every family is listed in [`FAMILIES`] with its type, labels and help;
//! the README's metrics table is that list. The registry itself is
//! `ai-review-metrics`, shared with the runner.

use crate::app::AppState;
use ai_review_domain::{TaskState, Timestamp};
pub use ai_review_metrics::{Family, Gauges, Kind, Labels};
use ai_review_store::Task;

const LATENCY: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
const TASK_SECONDS: &[f64] = &[
    0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];
const ATTEMPTS: &[f64] = &[1.0, 2.0, 3.0, 5.0, 10.0];

/// Every metric family the server exposes.
pub const FAMILIES: &[Family] = &[
    Family {
        name: "ai_review_http_requests_total",
        kind: Kind::Counter,
        labels: &["method", "route", "code"],
        help: "HTTP requests answered, by method, route template and status code.",
    },
    Family {
        name: "ai_review_http_request_duration_seconds",
        kind: Kind::Histogram(LATENCY),
        labels: &["method", "route"],
        help: "Time to answer an HTTP request, by method and route template (long-polls included).",
    },
    Family {
        name: "ai_review_tasks",
        kind: Kind::Gauge,
        labels: &["state"],
        help: "Runner tasks in the queue by state (read from the database: the same on every replica).",
    },
    Family {
        name: "ai_review_queue_oldest_pending_age_seconds",
        kind: Kind::Gauge,
        labels: &[],
        help: "Age of the oldest pending task (0 when none is pending).",
    },
    Family {
        name: "ai_review_runners",
        kind: Kind::Gauge,
        labels: &["status"],
        help: "Registered runners by status (online, busy, offline).",
    },
    Family {
        name: "ai_review_task_claims_total",
        kind: Kind::Counter,
        labels: &[],
        help: "Tasks handed to runners by this server process.",
    },
    Family {
        name: "ai_review_task_lease_expiries_total",
        kind: Kind::Counter,
        labels: &["outcome"],
        help: "Leases that ran out, seen by this process's reaper, by what followed (requeued, failed).",
    },
    Family {
        name: "ai_review_task_results_total",
        kind: Kind::Counter,
        labels: &["state"],
        help: "Tasks that reached a final state through this process, by state.",
    },
    Family {
        name: "ai_review_task_attempts",
        kind: Kind::Histogram(ATTEMPTS),
        labels: &[],
        help: "Claims a task used before it reached its final state.",
    },
    Family {
        name: "ai_review_task_queue_wait_seconds",
        kind: Kind::Histogram(TASK_SECONDS),
        labels: &[],
        help: "Time from enqueue to the first claim, for finished tasks.",
    },
    Family {
        name: "ai_review_task_phase_duration_seconds",
        kind: Kind::Histogram(TASK_SECONDS),
        labels: &["phase"],
        help: "Time spent in each execution phase (preparing, cloning, reviewing, submitting) of a finished task's last attempt.",
    },
    Family {
        name: "ai_review_reaper_runs_total",
        kind: Kind::Counter,
        labels: &[],
        help: "Reaper passes this process ran (across replicas one runs per period).",
    },
    Family {
        name: "ai_review_notifications_total",
        kind: Kind::Counter,
        labels: &["channel", "outcome"],
        help: "Notification delivery tries by this process, by channel and outcome (sent, retry, failed).",
    },
];

/// A new server's own registry over [`FAMILIES`].
pub fn registry() -> ai_review_metrics::Registry {
    ai_review_metrics::Registry::new(FAMILIES)
}

fn seconds_between(a: Timestamp, b: Timestamp) -> f64 {
    (b.as_millis() - a.as_millis()).max(0) as f64 / 1000.0
}

/// Records a task that reached its final state through this process:
/// result counter, attempts, queue wait, and the phase durations of its
/// last attempt (from the task's event log).
pub async fn task_finished(state: &AppState, task: &Task) {
    let m = &state.metrics;
    m.inc(
        "ai_review_task_results_total",
        vec![("state", task.state.as_str().to_owned())],
        1,
    );
    m.observe(
        "ai_review_task_attempts",
        Vec::new(),
        f64::from(task.attempt.0),
    );
    let Ok(events) = state.store.task_events(&task.id).await else {
        return;
    };
    if let Some(claimed) = events.iter().find(|e| e.kind == "claimed") {
        m.observe(
            "ai_review_task_queue_wait_seconds",
            Vec::new(),
            seconds_between(task.created_at, claimed.at),
        );
    }
    let last: Vec<_> = events
        .iter()
        .filter(|e| e.attempt == task.attempt)
        .collect();
    let mut current: Option<(&str, Timestamp)> = None;
    for e in &last {
        if let Some((phase, since)) = current.take() {
            m.observe(
                "ai_review_task_phase_duration_seconds",
                vec![("phase", phase.to_owned())],
                seconds_between(since, e.at),
            );
        }
        if e.kind == "phase" {
            current = Some((e.detail.as_str(), e.at));
        }
    }
}

/// The scrape-time gauges: tasks by state, the oldest pending task's age,
/// runners by status.
pub async fn gauges(state: &AppState) -> ai_review_store::StoreResult<Gauges> {
    let now = state.clock.now();
    let counts = state.store.queue_counts().await?;
    let tasks = TaskState::ALL
        .iter()
        .map(|s| {
            let n = counts.iter().find(|(c, _)| c == s).map_or(0, |(_, n)| *n);
            (vec![("state", s.as_str().to_owned())], n as f64)
        })
        .collect();
    let oldest = state
        .store
        .list_tasks(&[TaskState::Pending], 1)
        .await?
        .first()
        .map_or(0.0, |t| seconds_between(t.created_at, now));
    let runners = state.store.list_runners().await?;
    let cutoff = now.plus_millis(-crate::config::millis(state.settings.heartbeat_timeout));
    let mut by_status: std::collections::BTreeMap<String, u64> = ["online", "busy", "offline"]
        .iter()
        .map(|s| ((*s).to_owned(), 0))
        .collect();
    for r in &runners {
        let status = if r.last_heartbeat_at < cutoff {
            "offline".to_owned()
        } else {
            r.status.as_str().to_owned()
        };
        *by_status.entry(status).or_default() += 1;
    }
    let mut g = Gauges::new();
    g.insert("ai_review_tasks", tasks);
    g.insert(
        "ai_review_queue_oldest_pending_age_seconds",
        vec![(Vec::new(), oldest)],
    );
    g.insert(
        "ai_review_runners",
        by_status
            .into_iter()
            .map(|(s, n)| (vec![("status", s)], n as f64))
            .collect(),
    );
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_is_rendered_with_its_type() {
        let m = registry();
        m.observe(
            "ai_review_http_request_duration_seconds",
            vec![("method", "GET".into()), ("route", "/a".into())],
            0.03,
        );
        m.inc("ai_review_task_claims_total", Vec::new(), 2);
        let text = m.render(&Gauges::new());
        assert!(text.contains("ai_review_task_claims_total 2\n"));
        assert!(text.contains(
            "ai_review_http_request_duration_seconds_bucket{method=\"GET\",route=\"/a\",le=\"0.05\"} 1\n"
        ));
        for f in FAMILIES {
            assert!(text.contains(&format!("# TYPE {} {}\n", f.name, f.kind.as_str())));
        }
    }
}
