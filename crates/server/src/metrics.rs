//! Prometheus metrics (`GET /metrics`, text exposition format 0.0.4).
//!
//! Each server has its own [`Metrics`] registry in its state rather than a
//! process-global recorder: several servers run in one process (the
//! tests, `ai-review review`'s embedded server), and each must count only
//! its own requests. Counters and histograms are kept here as they
//! happen; the queue and runner gauges are read from the store at scrape
//! time, so every replica reports the same, shared queue.
//!
//! Every family is listed in [`FAMILIES`] with its type and help; the
//! README's metrics table is that list.

use crate::app::AppState;
use ai_review_domain::{TaskState, Timestamp};
use ai_review_store::Task;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// What kind of series a family holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// A value read at scrape time.
    Gauge,
    /// Observations in cumulative buckets.
    Histogram(&'static [f64]),
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram(_) => "histogram",
        }
    }
}

const LATENCY: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
const TASK_SECONDS: &[f64] = &[
    0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];
const ATTEMPTS: &[f64] = &[1.0, 2.0, 3.0, 5.0, 10.0];

/// Every metric family the server exposes: name, kind, help.
pub const FAMILIES: &[(&str, Kind, &str)] = &[
    (
        "ai_review_http_requests_total",
        Kind::Counter,
        "HTTP requests answered, by method, route template and status code.",
    ),
    (
        "ai_review_http_request_duration_seconds",
        Kind::Histogram(LATENCY),
        "Time to answer an HTTP request, by method and route template (long-polls included).",
    ),
    (
        "ai_review_tasks",
        Kind::Gauge,
        "Runner tasks in the queue by state (read from the database: the same on every replica).",
    ),
    (
        "ai_review_queue_oldest_pending_age_seconds",
        Kind::Gauge,
        "Age of the oldest pending task (0 when none is pending).",
    ),
    (
        "ai_review_runners",
        Kind::Gauge,
        "Registered runners by status (online, busy, offline).",
    ),
    (
        "ai_review_task_claims_total",
        Kind::Counter,
        "Tasks handed to runners by this server process.",
    ),
    (
        "ai_review_task_lease_expiries_total",
        Kind::Counter,
        "Leases that ran out, seen by this process's reaper, by what followed (requeued, failed).",
    ),
    (
        "ai_review_task_results_total",
        Kind::Counter,
        "Tasks that reached a final state through this process, by state.",
    ),
    (
        "ai_review_task_attempts",
        Kind::Histogram(ATTEMPTS),
        "Claims a task used before it reached its final state.",
    ),
    (
        "ai_review_task_queue_wait_seconds",
        Kind::Histogram(TASK_SECONDS),
        "Time from enqueue to the first claim, for finished tasks.",
    ),
    (
        "ai_review_task_phase_duration_seconds",
        Kind::Histogram(TASK_SECONDS),
        "Time spent in each execution phase (preparing, cloning, reviewing, submitting) of a finished task's last attempt.",
    ),
    (
        "ai_review_reaper_runs_total",
        Kind::Counter,
        "Reaper passes this process ran (across replicas one runs per period).",
    ),
    (
        "ai_review_notifications_total",
        Kind::Counter,
        "Notification delivery tries by this process, by channel and outcome (sent, retry, failed).",
    ),
];

type Labels = Vec<(&'static str, String)>;

#[derive(Debug, Clone)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

#[derive(Debug, Default)]
struct Series {
    counters: BTreeMap<(&'static str, Labels), u64>,
    histograms: BTreeMap<(&'static str, Labels), Histogram>,
}

/// One server's metrics registry.
#[derive(Debug, Default)]
pub struct Metrics {
    series: Mutex<Series>,
}

fn kind_of(name: &str) -> Option<Kind> {
    FAMILIES.iter().find(|f| f.0 == name).map(|f| f.1)
}

/// Escapes a label value (backslash, quote, newline).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn label_text(labels: &[(&'static str, String)], extra: Option<(&str, String)>) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    if let Some((k, v)) = extra {
        parts.push(format!("{k}=\"{v}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

/// A float as Prometheus writes it.
fn num(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        format!("{v}")
    }
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Series> {
        // A panic while holding the lock leaves plain numbers behind:
        // still valid to read.
        self.series
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds `by` to a counter.
    pub fn inc(&self, name: &'static str, labels: Labels, by: u64) {
        debug_assert_eq!(kind_of(name), Some(Kind::Counter), "{name}");
        *self.lock().counters.entry((name, labels)).or_default() += by;
    }

    /// Records one observation in a histogram.
    pub fn observe(&self, name: &'static str, labels: Labels, value: f64) {
        let Some(Kind::Histogram(bounds)) = kind_of(name) else {
            debug_assert!(false, "{name} is not a histogram");
            return;
        };
        let mut s = self.lock();
        let h = s.histograms.entry((name, labels)).or_insert(Histogram {
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        });
        for (i, b) in bounds.iter().enumerate() {
            if value <= *b {
                h.counts[i] += 1;
            }
        }
        h.sum += value;
        h.count += 1;
    }

    /// The exposition text: every family with its `HELP` and `TYPE`, the
    /// series kept here, and the scrape-time `gauges`.
    pub fn render(&self, gauges: &BTreeMap<&'static str, Vec<(Labels, f64)>>) -> String {
        let s = self.lock();
        let mut out = String::new();
        for (name, kind, help) in FAMILIES {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {}", kind.as_str());
            match kind {
                Kind::Counter => {
                    for ((n, labels), v) in &s.counters {
                        if n == name {
                            let _ = writeln!(out, "{name}{} {v}", label_text(labels, None));
                        }
                    }
                }
                Kind::Gauge => {
                    for (labels, v) in gauges.get(name).map(Vec::as_slice).unwrap_or_default() {
                        let _ = writeln!(out, "{name}{} {}", label_text(labels, None), num(*v));
                    }
                }
                Kind::Histogram(bounds) => {
                    for ((n, labels), h) in &s.histograms {
                        if n != name {
                            continue;
                        }
                        for (b, c) in bounds.iter().zip(&h.counts) {
                            let _ = writeln!(
                                out,
                                "{name}_bucket{} {c}",
                                label_text(labels, Some(("le", num(*b))))
                            );
                        }
                        let _ = writeln!(
                            out,
                            "{name}_bucket{} {}",
                            label_text(labels, Some(("le", "+Inf".to_owned()))),
                            h.count
                        );
                        let _ =
                            writeln!(out, "{name}_sum{} {}", label_text(labels, None), num(h.sum));
                        let _ =
                            writeln!(out, "{name}_count{} {}", label_text(labels, None), h.count);
                    }
                }
            }
        }
        out
    }
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
pub async fn gauges(
    state: &AppState,
) -> ai_review_store::StoreResult<BTreeMap<&'static str, Vec<(Labels, f64)>>> {
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
    let mut by_status: BTreeMap<String, u64> = ["online", "busy", "offline"]
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
    let mut g = BTreeMap::new();
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
    fn histograms_are_cumulative_and_labels_escaped() {
        let m = Metrics::default();
        m.observe(
            "ai_review_http_request_duration_seconds",
            vec![("route", "/a\"b".into())],
            0.03,
        );
        m.observe(
            "ai_review_http_request_duration_seconds",
            vec![("route", "/a\"b".into())],
            7.0,
        );
        m.inc("ai_review_task_claims_total", Vec::new(), 2);
        let text = m.render(&BTreeMap::new());
        assert!(text.contains(
            "ai_review_http_request_duration_seconds_bucket{route=\"/a\\\"b\",le=\"0.025\"} 0"
        ));
        assert!(text.contains(
            "ai_review_http_request_duration_seconds_bucket{route=\"/a\\\"b\",le=\"0.05\"} 1"
        ));
        assert!(text.contains(
            "ai_review_http_request_duration_seconds_bucket{route=\"/a\\\"b\",le=\"+Inf\"} 2"
        ));
        assert!(
            text.contains("ai_review_http_request_duration_seconds_sum{route=\"/a\\\"b\"} 7.03")
        );
        assert!(text.contains("ai_review_task_claims_total 2\n"));
        for (name, kind, _) in FAMILIES {
            assert!(text.contains(&format!("# TYPE {name} {}\n", kind.as_str())));
        }
    }
}
