//! Several server replicas on one PostgreSQL: how fast a task enqueued on
//! one replica reaches a runner long-polling on another (the
//! LISTEN/NOTIFY wake-up), and claim → result throughput with the runners
//! split across two replicas versus all on one.
//!
//! The replicas are in-process [`RunningServer`]s, each with its own store
//! (own connection pool and own `LISTEN` connection) opened on the same
//! database, each on its own loopback TCP listener.

use crate::{create_key, enqueue_at, percentile, register_runner};
use ai_review_domain::{Role, TaskOutcome};
use ai_review_server::clock::SystemClock;
use ai_review_server::config::Settings;
use ai_review_server::{RunningServer, open_store};
use futures::StreamExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Fails unless `given` (the `--database-url`, if any) is PostgreSQL.
pub fn require_postgres(given: Option<&str>) -> anyhow::Result<()> {
    match given {
        Some(u) if !(u.starts_with("postgres://") || u.starts_with("postgresql://")) => {
            let scheme = u.split("://").next().unwrap_or(u);
            anyhow::bail!(
                "the replica scenarios need PostgreSQL (several server processes share one \
                 database; SQLite is single-process by design), got a `{scheme}://` URL: \
                 pass --database-url postgres://… or leave it out to start a throwaway cluster"
            )
        }
        _ => Ok(()),
    }
}

/// The database for one run of a replica scenario: `given` (PostgreSQL,
/// see [`require_postgres`]), else a fresh database on a throwaway cluster
/// started as the test suites start theirs (`fsync` off).
pub async fn database_url(given: Option<&str>) -> anyhow::Result<String> {
    require_postgres(given)?;
    Ok(match given {
        Some(u) => u.to_owned(),
        None => ai_review_pg_testing::fresh_database_url().await,
    })
}

/// `n` replicas on `url`, and an admin API key valid on all of them.
struct Replicas {
    servers: Vec<RunningServer>,
    key: String,
    http: reqwest::Client,
}

impl Replicas {
    async fn start(url: &str, n: usize) -> anyhow::Result<Self> {
        let settings = Settings {
            rate_limit: None,
            // A held long-poll looks again by itself only after 30 s, so
            // only the cross-replica wake-up explains a fast claim.
            poll_recheck: Duration::from_secs(30),
            ..Settings::default()
        };
        let mut servers = Vec::with_capacity(n);
        let mut key = None;
        for _ in 0..n {
            let store = open_store(url).await?;
            if key.is_none() {
                key = Some(create_key(&store, Role::Admin, Vec::new()).await?);
            }
            servers.push(
                RunningServer::start(settings.clone(), store, Arc::new(SystemClock), true).await?,
            );
        }
        Ok(Self {
            servers,
            key: key.unwrap_or_default(),
            http: reqwest::Client::new(),
        })
    }

    async fn stop(self) -> anyhow::Result<()> {
        for s in self.servers {
            s.stop().await?;
        }
        Ok(())
    }
}

/// Per-sample enqueue-on-A → claimed-on-B latencies of one run, in ms,
/// sorted.
pub async fn wakeup(url: &str, samples: usize) -> anyhow::Result<Vec<f64>> {
    let r = Replicas::start(url, 2).await?;
    let (a, b) = (r.servers[0].url(), r.servers[1].url());
    let runner = register_runner(&b, &r.key, "wakeup-b").await?;
    let mut ms = Vec::with_capacity(samples);
    for i in 0..samples {
        let poll = {
            let runner = runner.clone();
            tokio::spawn(async move {
                let got = runner.poll(1, Duration::from_secs(30)).await?;
                anyhow::Ok((Instant::now(), got))
            })
        };
        // Long enough for the poll to reach B, find nothing and park.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let t0 = Instant::now();
        enqueue_at(&r.http, &a, &r.key).await?;
        let (t1, got) = poll.await??;
        anyhow::ensure!(
            got.len() == 1,
            "sample {i}: the poll on B returned {} tasks after {:?}",
            got.len(),
            t1.saturating_duration_since(t0)
        );
        anyhow::ensure!(
            t1 >= t0,
            "sample {i}: the poll on B claimed a task queued before the sample \
             (a reused database holds pending tasks; use an empty one)"
        );
        ms.push((t1 - t0).as_secs_f64() * 1000.0);
        // Not timed: finish the task so the database is left with nothing
        // pending or leased.
        let t = &got[0];
        runner
            .submit_result(
                &t.task_id,
                t.attempt,
                TaskOutcome::Failed,
                Some("bench".into()),
                false,
                None,
            )
            .await?;
    }
    r.stop().await?;
    ms.sort_by(f64::total_cmp);
    Ok(ms)
}

/// Completed tasks per second: `tasks` queued first (through replica A),
/// then `runners` client loops claim (`wait=0`) and submit results as fast
/// as they can, runner `i` talking to replica `i % replicas`.
pub async fn throughput(
    url: &str,
    replicas: usize,
    runners: usize,
    tasks: usize,
) -> anyhow::Result<f64> {
    let r = Replicas::start(url, replicas).await?;
    let a = r.servers[0].url();
    let enqueued: Vec<anyhow::Result<()>> = futures::stream::iter(0..tasks)
        .map(|_| enqueue_at(&r.http, &a, &r.key))
        .buffer_unordered(8)
        .collect()
        .await;
    enqueued.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    let mut clients = Vec::with_capacity(runners);
    for i in 0..runners {
        let at = r.servers[i % replicas].url();
        clients.push(register_runner(&at, &r.key, &format!("rtp-{i}")).await?);
    }
    let done = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let mut handles = Vec::with_capacity(runners);
    for c in clients {
        let done = done.clone();
        handles.push(tokio::spawn(async move {
            loop {
                let got = c.poll(1, Duration::ZERO).await?;
                if got.is_empty() {
                    return anyhow::Ok(());
                }
                for t in got {
                    c.submit_result(
                        &t.task_id,
                        t.attempt,
                        TaskOutcome::Succeeded,
                        None,
                        false,
                        Some(serde_json::json!({"ok": true})),
                    )
                    .await?;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for h in handles {
        h.await??;
    }
    let secs = t0.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed);
    anyhow::ensure!(n as usize == tasks, "completed {n} of {tasks}");
    r.stop().await?;
    Ok(n as f64 / secs)
}

/// p50, p95, p99 and max of sorted samples.
pub fn summary(sorted: &[f64]) -> (f64, f64, f64, f64) {
    (
        percentile(sorted, 0.5),
        percentile(sorted, 0.95),
        percentile(sorted, 0.99),
        sorted.last().copied().unwrap_or(f64::NAN),
    )
}
