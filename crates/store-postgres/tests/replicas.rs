//! Two server replicas sharing one PostgreSQL database: concurrent claims
//! and concurrent reaper passes never process a task twice, summaries
//! scheduled on both are queued and sent once per period, a periodic job
//! raced by both starts once per period, rate-limit hits through both add
//! up in one count, a task announcement made by one wakes the other (also
//! after its listener lost its connection), and concurrent startups apply
//! migrations once.

use ai_review_domain::*;
use ai_review_store::*;
use ai_review_store_postgres::PgStore;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

const LEASE: i64 = 30_000;

async fn two_replicas() -> (DynStore, DynStore) {
    let url = ai_review_pg_testing::fresh_database_url().await;
    // Both replicas start at once and race to migrate.
    let (a, b) = tokio::join!(PgStore::connect(&url), PgStore::connect(&url));
    (
        Arc::new(a.expect("replica a")),
        Arc::new(b.expect("replica b")),
    )
}

async fn fixtures(store: &DynStore, tasks: usize, now: Timestamp) -> (User, Vec<TaskId>) {
    let user = store
        .create_user(NewUser {
            id: UserId::generate(),
            email: Email::parse("ops@example.com").expect("email"),
            password_hash: "x".into(),
            role: Role::User,
            permissions: vec![],
            now,
        })
        .await
        .expect("user");
    let mut ids = Vec::new();
    for i in 0..tasks {
        let (_, t) = store
            .enqueue_review(NewReview {
                id: ReviewId::generate(),
                task_id: TaskId::generate(),
                repo_url: RepoUrl::parse("https://h/r.git").expect("url"),
                base_sha: CommitSha::parse(&"a".repeat(40)).expect("sha"),
                head_sha: CommitSha::parse(&"b".repeat(40)).expect("sha"),
                branch: None,
                title: None,
                created_by: user.id.clone(),
                required_tags: TagSet::default(),
                max_attempts: 3,
                expires_at: now.plus_millis(3_600_000),
                change: None,
                spec: serde_json::json!({}),
                now: now.plus_millis(i as i64),
            })
            .await
            .expect("enqueue");
        ids.push(t.id);
    }
    (user, ids)
}

async fn register(store: &DynStore, owner: &User, id: &str, now: Timestamp) -> RunnerId {
    store
        .register_runner(RunnerRegistration {
            id: RunnerId::parse(id).expect("id"),
            name: id.into(),
            version: "t".into(),
            max_concurrency: 8,
            tags: TagSet::default(),
            owner: owner.id.clone(),
            now,
        })
        .await
        .expect("register")
        .id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn claims_through_two_replicas_never_share_a_task() {
    let (a, b) = two_replicas().await;
    let now = Timestamp::from_millis(1_800_000_000_000);
    let (user, ids) = fixtures(&a, 50, now).await;
    let mut handles = Vec::new();
    for n in 0..8 {
        let store = if n % 2 == 0 { a.clone() } else { b.clone() };
        let runner = register(&store, &user, &format!("r{n}"), now).await;
        handles.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let claim = Claim {
                    runner_id: runner.clone(),
                    runner_tags: TagSet::default(),
                    limit: 2,
                    now: now.plus_millis(1000),
                    lease_until: now.plus_millis(1000 + LEASE),
                };
                let batch = store.claim_tasks(claim).await.expect("claim");
                if batch.is_empty() {
                    break got;
                }
                got.extend(batch.into_iter().map(|t| t.id));
            }
        }));
    }
    let mut seen = HashSet::new();
    for h in handles {
        for id in h.await.expect("join") {
            assert!(
                seen.insert(id.clone()),
                "task {id} claimed twice across replicas"
            );
        }
    }
    assert_eq!(seen, ids.into_iter().collect::<HashSet<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_reapers_on_two_replicas_requeue_each_task_once() {
    let (a, b) = two_replicas().await;
    let now = Timestamp::from_millis(1_800_000_000_000);
    let (user, ids) = fixtures(&a, 30, now).await;
    let runner = register(&a, &user, "dies", now).await;
    let claimed = a
        .claim_tasks(Claim {
            runner_id: runner,
            runner_tags: TagSet::default(),
            limit: 30,
            now,
            lease_until: now.plus_millis(LEASE),
        })
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 30);
    let later = now.plus_millis(LEASE + 1);
    let requeue_expiry = later.plus_millis(3_600_000);
    // Three reaper passes on each replica at once.
    let reapers: Vec<_> = (0..6)
        .map(|n| {
            let store = if n % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move { store.reap_expired_leases(later, requeue_expiry).await })
        })
        .collect();
    let mut requeued = Vec::new();
    for r in reapers {
        let report = r.await.expect("join").expect("reap");
        assert!(
            report.failed.is_empty() && report.cancelled.is_empty(),
            "{report:?}"
        );
        requeued.extend(report.requeued);
    }
    assert_eq!(
        requeued.len(),
        30,
        "each task reported requeued once: {requeued:?}"
    );
    assert_eq!(
        requeued.into_iter().collect::<HashSet<_>>(),
        ids.iter().cloned().collect::<HashSet<_>>()
    );
    for id in &ids {
        let requeues = a
            .task_events(id)
            .await
            .expect("events")
            .iter()
            .filter(|e| e.kind == "requeued")
            .count();
        assert_eq!(requeues, 1, "task {id}");
        let attempts = a.task_attempts(id).await.expect("attempts");
        assert_eq!(attempts.len(), 1, "task {id}");
        assert_eq!(attempts[0].outcome.as_deref(), Some("lease_expired"));
        let t = b.get_task(id).await.expect("get").expect("task");
        assert_eq!((t.state, t.attempt), (TaskState::Pending, Attempt(1)));
    }
}

fn daily_summary(channel: NotificationChannel, day: u32, now: Timestamp) -> NewNotification {
    NewNotification {
        id: NotificationId::generate(),
        event: NotificationEvent::DailySummary,
        channel,
        review_id: None,
        dedup_key: format!("daily_summary:2026-11-{day:02}:{channel}"),
        payload: serde_json::json!({"day": day}),
        now,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn summaries_scheduled_on_two_replicas_are_queued_and_claimed_once() {
    let (a, b) = two_replicas().await;
    let now = Timestamp::from_millis(1_800_000_000_000);
    let channels = [
        NotificationChannel::Email,
        NotificationChannel::Slack,
        NotificationChannel::Feishu,
    ];
    // Each replica's scheduler fires several times for the same ten days,
    // every pass with its channels in another order.
    let schedulers: Vec<_> = (0..8usize)
        .map(|n| {
            let store = if n % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move {
                let mut batch: Vec<_> = (1..=10)
                    .flat_map(|day| channels.map(|c| daily_summary(c, day, now)))
                    .collect();
                batch.rotate_left(n * 7 % 30);
                store.enqueue_notifications(batch).await.expect("enqueue")
            })
        })
        .collect();
    let mut queued = HashSet::new();
    for s in schedulers {
        for n in s.await.expect("join") {
            assert!(
                queued.insert(n.dedup_key.clone()),
                "{} queued twice",
                n.dedup_key
            );
        }
    }
    assert_eq!(queued.len(), 30, "every (day, channel) queued once");

    let senders: Vec<_> = (0..8usize)
        .map(|n| {
            let store = if n % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move {
                let mut got = Vec::new();
                loop {
                    let batch = store
                        .claim_notifications(now, now.plus_millis(LEASE), 2)
                        .await
                        .expect("claim");
                    if batch.is_empty() {
                        break got;
                    }
                    got.extend(batch.into_iter().map(|n| n.dedup_key));
                }
            })
        })
        .collect();
    let mut claimed = HashSet::new();
    for s in senders {
        for key in s.await.expect("join") {
            assert!(
                claimed.insert(key.clone()),
                "{key} claimed twice across replicas"
            );
        }
    }
    assert_eq!(claimed, queued);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_starting_together_apply_each_migration_once() {
    let url = ai_review_pg_testing::fresh_database_url().await;
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { PgStore::connect(&url).await })
        })
        .collect();
    for s in starts {
        s.await.expect("join").expect("replica starts");
    }
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
        .await
        .expect("connect");
    let versions: Vec<(i64, String)> =
        sqlx::query_as("SELECT version, name FROM _migrations ORDER BY version")
            .fetch_all(&mut conn)
            .await
            .expect("read _migrations");
    assert_eq!(
        versions,
        vec![
            (1, "init".to_owned()),
            (2, "config_items".to_owned()),
            (3, "projects".to_owned()),
            (4, "webhook_events".to_owned()),
            (5, "review_changes".to_owned()),
            (6, "pushback".to_owned()),
            (7, "sessions".to_owned()),
            (8, "notifications".to_owned()),
            (9, "push_subscriptions".to_owned()),
            (10, "periodic_jobs".to_owned()),
            (11, "rate_limit_windows".to_owned()),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_periodic_job_raced_by_two_replicas_starts_once_per_period() {
    const PERIOD: i64 = 60_000;
    let (a, b) = two_replicas().await;
    let t0 = 1_800_000_000_000;
    for round in 0..100_i64 {
        // Even rounds race to insert a new job's row, odd ones to update
        // the row of one job due again (its last start was two rounds ago).
        let job = if round % 2 == 0 {
            format!("fresh-{round}")
        } else {
            "shared".to_owned()
        };
        let now = Timestamp::from_millis(t0 + round * PERIOD);
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let calls: Vec<_> = [a.clone(), b.clone()]
            .into_iter()
            .map(|store| {
                let (job, barrier) = (job.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    store.try_start_periodic(&job, now, PERIOD).await
                })
            })
            .collect();
        let mut won = 0;
        for c in calls {
            if c.await.expect("join").expect("try_start_periodic") {
                won += 1;
            }
        }
        assert_eq!(won, 1, "round {round}: exactly one replica starts {job}");
    }
    assert_eq!(a.periodic_runs("shared").await.expect("runs"), 50);
    assert_eq!(b.periodic_runs("fresh-42").await.expect("runs"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rate_limit_hits_on_two_replicas_share_one_count() {
    const WINDOW: i64 = 120_000;
    let (a, b) = two_replicas().await;
    let key = RateLimitKey::new("login", b"192.0.2.10");
    let now = Timestamp::from_millis(1_800_000_000_000 + 5);
    // 40 hits at once, half through each replica: each counts once, as if
    // one replica had taken them all.
    let hits: Vec<_> = (0..40usize)
        .map(|n| {
            let store = if n % 2 == 0 { a.clone() } else { b.clone() };
            let key = key.clone();
            tokio::spawn(async move { store.hit_rate_limit(&key, now, WINDOW).await })
        })
        .collect();
    let mut counts = Vec::new();
    for h in hits {
        counts.push(h.await.expect("join").expect("hit_rate_limit").hits);
    }
    counts.sort_unstable();
    assert_eq!(counts, (1..=40).collect::<Vec<u64>>());
    assert_eq!(
        b.hit_rate_limit(&key, now, WINDOW).await.expect("hit").hits,
        41
    );
    // The sweep on either replica deletes the window for both.
    let later = now.plus_millis(2 * WINDOW);
    assert_eq!(
        a.delete_expired_rate_limit_windows(later)
            .await
            .expect("sweep"),
        1
    );
    assert_eq!(
        b.hit_rate_limit(&key, later, WINDOW)
            .await
            .expect("hit")
            .hits,
        1
    );
}

async fn next(announcements: &mut TaskAnnouncements, within: Duration) -> Option<()> {
    tokio::time::timeout(within, announcements.next())
        .await
        .expect("an announcement in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn task_announcements_reach_the_other_replica_until_it_closes() {
    let (a, b) = two_replicas().await;
    let mut on_b = b
        .task_announcements()
        .await
        .expect("listen")
        .expect("PostgreSQL offers announcements");
    a.announce_tasks().await.expect("announce");
    assert_eq!(next(&mut on_b, Duration::from_secs(5)).await, Some(()));
    // Announcements in a burst may coalesce, but at least one arrives.
    for _ in 0..3 {
        a.announce_tasks().await.expect("announce");
    }
    assert_eq!(next(&mut on_b, Duration::from_secs(5)).await, Some(()));
    // Closing the store ends its listeners.
    b.close().await;
    let mut ended = false;
    for _ in 0..3 {
        if next(&mut on_b, Duration::from_secs(5)).await.is_none() {
            ended = true;
            break;
        }
    }
    assert!(ended, "the announcements end when their store closes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_listener_whose_connection_is_killed_reconnects_and_says_so() {
    let url = ai_review_pg_testing::fresh_database_url().await;
    let a = PgStore::connect(&url).await.expect("replica a");
    let b = PgStore::connect(&url).await.expect("replica b");
    let mut on_b = b
        .task_announcements()
        .await
        .expect("listen")
        .expect("PostgreSQL offers announcements");
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
        .await
        .expect("connect");
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid() \
         AND query LIKE 'LISTEN%'",
    )
    .fetch_all(&mut admin)
    .await
    .expect("terminate the listener");
    assert_eq!(killed, vec![true], "one listener connection");
    // Nobody announced anything: this item is the listener saying it is
    // back and announcements may have been missed meanwhile.
    assert_eq!(next(&mut on_b, Duration::from_secs(10)).await, Some(()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    while on_b.try_next().is_some() {}
    a.announce_tasks().await.expect("announce");
    assert_eq!(
        next(&mut on_b, Duration::from_secs(5)).await,
        Some(()),
        "the reconnected listener hears announcements again"
    );
}
