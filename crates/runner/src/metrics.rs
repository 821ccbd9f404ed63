//! The runner's Prometheus metrics (`GET /metrics` on `RUNNER_METRICS_ADDR`,
//! text exposition format 0.0.4).
//!
//! Each runner has its own [`Metrics`] registry rather than a
//! process-global recorder, as the server does: several runners run in one
//! process (the tests, `ai-review review`'s in-process runner) and each must
//! count only its own work. Counters and histograms are kept here as things
//! happen; the slot and pool gauges are read from the runner at scrape time
//! ([`Gauges`]).
//!
//! Every family is listed in [`FAMILIES`] with its type, labels and help;
//! the README's runner metrics table is that list. The registry itself is
//! `ai-review-metrics`, shared with the server.

use ai_review_metrics::Registry;
pub use ai_review_metrics::{Family, Kind};
use axum::http::header;
use axum::response::IntoResponse;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Container start buckets: a warm start is a `create` and a `start`
/// (tens of milliseconds); a cold one may wait on a busy daemon.
const START_SECONDS: &[f64] = &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// The container capacity gauge.
pub const SLOTS: &str = "ai_review_runner_slots";
/// Slots running a task.
pub const SLOTS_IN_USE: &str = "ai_review_runner_slots_in_use";
/// Tasks finished by outcome.
pub const TASKS: &str = "ai_review_runner_tasks_total";
/// Warm containers ready.
pub const POOL_SIZE: &str = "ai_review_runner_pool_size";
/// Tasks that found a warm container.
pub const POOL_HITS: &str = "ai_review_runner_pool_hits_total";
/// Tasks that started a container cold.
pub const POOL_MISSES: &str = "ai_review_runner_pool_misses_total";
/// Time to a running container.
pub const CONTAINER_START: &str = "ai_review_runner_container_start_seconds";
/// Chat calls answered by the model gateway.
pub const GATEWAY_REQUESTS: &str = "ai_review_runner_gateway_requests_total";
/// Tokens the provider billed.
pub const GATEWAY_TOKENS: &str = "ai_review_runner_gateway_tokens_total";
/// Chat calls answered from the response cache.
pub const GATEWAY_CACHE_HITS: &str = "ai_review_runner_gateway_cache_hits_total";

/// Every metric family the runner exposes.
pub const FAMILIES: &[Family] = &[
    Family {
        name: SLOTS,
        kind: Kind::Gauge,
        labels: &[],
        help: "Tasks this runner may run at once (RUNNER_MAX_CONCURRENT_JOBS).",
    },
    Family {
        name: SLOTS_IN_USE,
        kind: Kind::Gauge,
        labels: &[],
        help: "Tasks this runner is running now.",
    },
    Family {
        name: TASKS,
        kind: Kind::Counter,
        labels: &["outcome"],
        help: "Tasks this runner finished, by outcome (succeeded, failed, cancelled, interrupted, lease_lost, runner_restarted).",
    },
    Family {
        name: POOL_SIZE,
        kind: Kind::Gauge,
        labels: &[],
        help: "Warm containers started and waiting for a task (DOCKER_POOL_SIZE wanted).",
    },
    Family {
        name: POOL_HITS,
        kind: Kind::Counter,
        labels: &[],
        help: "Tasks that took a warm container from the pool.",
    },
    Family {
        name: POOL_MISSES,
        kind: Kind::Counter,
        labels: &[],
        help: "Tasks that found the pool empty and started a container cold (every task when DOCKER_POOL_SIZE=0).",
    },
    Family {
        name: CONTAINER_START,
        kind: Kind::Histogram(START_SECONDS),
        labels: &["source"],
        help: "Time from asking the engine for a container to having it running, by source (pool: warmed ahead, cold: for a waiting task).",
    },
    Family {
        name: GATEWAY_REQUESTS,
        kind: Kind::Counter,
        labels: &["status"],
        help: "Chat calls the model gateway answered, by the HTTP status it answered the executor with.",
    },
    Family {
        name: GATEWAY_TOKENS,
        kind: Kind::Counter,
        labels: &["kind"],
        help: "Tokens the model provider reported for calls the gateway sent it (prompt, completion); cached answers are not counted.",
    },
    Family {
        name: GATEWAY_CACHE_HITS,
        kind: Kind::Counter,
        labels: &[],
        help: "Chat calls answered from the on-disk response cache instead of the provider.",
    },
];

/// How a task ended on this runner, as counted by
/// `ai_review_runner_tasks_total{outcome}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskEnd {
    /// The executor produced a result.
    Succeeded,
    /// The task failed (executor, clone, timeout, out of memory, …).
    Failed,
    /// A user cancelled it.
    Cancelled,
    /// The runner drained and its grace period ran out.
    Interrupted,
    /// The server gave the task to someone else; no result was sent.
    LeaseLost,
    /// Found in a claim file left by an earlier life of this runner, and
    /// reported `runner_restarted`.
    RunnerRestarted,
}

impl TaskEnd {
    /// Every outcome, in label order.
    pub const ALL: [TaskEnd; 6] = [
        Self::Succeeded,
        Self::Failed,
        Self::Cancelled,
        Self::Interrupted,
        Self::LeaseLost,
        Self::RunnerRestarted,
    ];

    /// The `outcome` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Interrupted => "interrupted",
            Self::LeaseLost => "lease_lost",
            Self::RunnerRestarted => "runner_restarted",
        }
    }
}

/// Where a task's container came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartSource {
    /// Started ahead of time by the warm pool.
    Pool,
    /// Started for a task that found the pool empty.
    Cold,
}

impl StartSource {
    fn as_str(self) -> &'static str {
        match self {
            Self::Pool => "pool",
            Self::Cold => "cold",
        }
    }
}

/// The gauges, read from the runner at scrape time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gauges {
    /// Capacity (`RUNNER_MAX_CONCURRENT_JOBS`).
    pub slots: u32,
    /// Tasks running.
    pub slots_in_use: u32,
    /// Warm containers ready.
    pub pool_size: usize,
}

/// One runner's metrics registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
}

impl Default for Metrics {
    /// A registry whose fixed series start at zero, so `rate()` and
    /// `increase()` see the first event.
    fn default() -> Self {
        let m = Self {
            registry: Registry::new(FAMILIES),
        };
        for end in TaskEnd::ALL {
            m.inc(TASKS, vec![("outcome", end.as_str().to_owned())], 0);
        }
        m.inc(POOL_HITS, Vec::new(), 0);
        m.inc(POOL_MISSES, Vec::new(), 0);
        m.gateway_tokens(0, 0);
        m.inc(GATEWAY_CACHE_HITS, Vec::new(), 0);
        m
    }
}

impl Metrics {
    fn inc(&self, name: &'static str, labels: ai_review_metrics::Labels, by: u64) {
        self.registry.inc(name, labels, by);
    }

    /// Counts a task that ended on this runner.
    pub fn task_finished(&self, end: TaskEnd) {
        self.inc(TASKS, vec![("outcome", end.as_str().to_owned())], 1);
    }

    /// Counts a task that took a warm container.
    pub fn pool_hit(&self) {
        self.inc(POOL_HITS, Vec::new(), 1);
    }

    /// Counts a task that had to start its container cold.
    pub fn pool_miss(&self) {
        self.inc(POOL_MISSES, Vec::new(), 1);
    }

    /// Records how long a container took from `create` to running.
    pub fn container_started(&self, source: StartSource, seconds: f64) {
        self.registry.observe(
            CONTAINER_START,
            vec![("source", source.as_str().to_owned())],
            seconds,
        );
    }

    /// Counts a chat call the gateway answered with `status`.
    pub fn gateway_request(&self, status: u16) {
        self.inc(GATEWAY_REQUESTS, vec![("status", status.to_string())], 1);
    }

    /// Adds the tokens the provider reported for one call.
    pub fn gateway_tokens(&self, prompt: u64, completion: u64) {
        self.inc(GATEWAY_TOKENS, vec![("kind", "prompt".to_owned())], prompt);
        self.inc(
            GATEWAY_TOKENS,
            vec![("kind", "completion".to_owned())],
            completion,
        );
    }

    /// Counts a chat call answered from the response cache.
    pub fn gateway_cache_hit(&self) {
        self.inc(GATEWAY_CACHE_HITS, Vec::new(), 1);
    }

    /// The exposition text, with the scrape-time `gauges`.
    pub fn render(&self, gauges: Gauges) -> String {
        let g: ai_review_metrics::Gauges = [
            (SLOTS, f64::from(gauges.slots)),
            (SLOTS_IN_USE, f64::from(gauges.slots_in_use)),
            (POOL_SIZE, gauges.pool_size as f64),
        ]
        .into_iter()
        .map(|(name, v)| (name, vec![(Vec::new(), v)]))
        .collect();
        self.registry.render(&g)
    }
}

/// Produces the exposition text at each scrape.
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

/// Serves `GET /metrics` on `listener` until `stop` fires.
pub async fn serve(
    listener: tokio::net::TcpListener,
    render: Render,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let render = render.clone();
            async move {
                (
                    [(header::CONTENT_TYPE, ai_review_metrics::CONTENT_TYPE)],
                    render(),
                )
                    .into_response()
            }
        }),
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_series_start_at_zero_and_histograms_are_cumulative() {
        let m = Metrics::default();
        let text = m.render(Gauges::default());
        for end in TaskEnd::ALL {
            assert!(
                text.contains(&format!(
                    "ai_review_runner_tasks_total{{outcome=\"{}\"}} 0\n",
                    end.as_str()
                )),
                "{text}"
            );
        }
        assert!(text.contains("ai_review_runner_pool_misses_total 0\n"));
        assert!(text.contains("ai_review_runner_gateway_tokens_total{kind=\"prompt\"} 0\n"));

        m.container_started(StartSource::Cold, 0.03);
        m.container_started(StartSource::Cold, 45.0);
        m.task_finished(TaskEnd::LeaseLost);
        m.gateway_request(402);
        let text = m.render(Gauges {
            slots: 4,
            slots_in_use: 1,
            pool_size: 2,
        });
        for line in [
            "ai_review_runner_container_start_seconds_bucket{source=\"cold\",le=\"0.025\"} 0\n",
            "ai_review_runner_container_start_seconds_bucket{source=\"cold\",le=\"0.05\"} 1\n",
            "ai_review_runner_container_start_seconds_bucket{source=\"cold\",le=\"30\"} 1\n",
            "ai_review_runner_container_start_seconds_bucket{source=\"cold\",le=\"+Inf\"} 2\n",
            "ai_review_runner_container_start_seconds_sum{source=\"cold\"} 45.03\n",
            "ai_review_runner_tasks_total{outcome=\"lease_lost\"} 1\n",
            "ai_review_runner_gateway_requests_total{status=\"402\"} 1\n",
            "ai_review_runner_slots 4\n",
            "ai_review_runner_slots_in_use 1\n",
            "ai_review_runner_pool_size 2\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        for f in FAMILIES {
            assert!(text.contains(&format!("# TYPE {} {}\n", f.name, f.kind.as_str())));
        }
    }
}
