//! The conformance suite every store backend must pass.
//!
//! Each public `async fn` here is one test taking a fresh, empty store.
//! A backend runs the whole suite with [`crate::conformance_suite!`]:
//!
//! ```ignore
//! async fn fresh() -> ai_review_store::DynStore { /* new empty database */ }
//! ai_review_store::conformance_suite!(fresh);
//! ```

use crate::*;
use ai_review_domain::*;
use std::collections::HashSet;

/// Generates one `#[tokio::test]` per conformance case, each calling
/// `$factory().await` for a fresh store.
#[macro_export]
macro_rules! conformance_suite {
    ($factory:path) => {
        $crate::conformance_suite!(@cases $factory;
            users_and_api_keys,
            first_admin_is_created_once,
            first_admin_defers_to_an_existing_admin,
            user_updates_keep_an_enabled_admin_and_end_sessions,
            sessions_expire_slide_and_exclude_disabled_users,
            runner_registration_is_an_owned_upsert,
            concurrent_claims_never_share_a_task,
            claims_respect_limit_order_and_tags,
            fencing_refuses_stale_and_foreign_calls,
            expired_leases_requeue_then_fail_after_max_attempts,
            heartbeats_renew_leases_and_deliver_cancellations,
            results_are_idempotent_and_retryable_failures_requeue,
            cancellation_of_pending_and_finished_tasks,
            unclaimed_tasks_expire,
            config_items_crud_names_and_one_default,
            projects_upsert_keep_settings_filter_and_count,
            webhook_deliveries_are_recorded_once,
            change_reviews_number_rounds_and_supersede_older_ones,
            pushbacks_are_leased_retried_and_finished,
            logs_are_capped_per_task,
            silent_runners_are_marked_offline,
            reviews_list_with_filters_and_counts,
            task_lists_filter_by_state_oldest_first,
            task_timings_start_at_the_first_claim,
            tasks_and_reviews_by_ids_keep_the_order_asked,
            review_status_counts_follow_project_and_date_filters,
            retries_are_queued_once,
            notifications_are_queued_once_per_dedup_key,
            notification_claims_lease_count_order_and_wait_until_due,
            concurrent_notification_claims_never_share_one,
            expired_notification_leases_make_them_claimable_again,
            notification_outcomes_retry_fail_send_and_are_final,
            missing_notifications_are_none_or_not_found,
            notification_history_filters_pages_and_counts,
            notification_stats_count_per_channel_and_status,
            push_subscriptions_are_saved_and_read_back,
            push_subscriptions_upsert_by_endpoint_keeping_id_and_creation,
            push_subscriptions_list_per_user_or_all_oldest_first,
            push_subscription_deletes_report_what_they_deleted,
            push_subscription_ids_taken_by_another_endpoint_conflict,
            periodic_jobs_start_once_per_period,
            concurrent_periodic_starts_elect_exactly_one,
            rate_limit_hits_count_per_key_and_window,
            concurrent_rate_limit_hits_each_count_once,
            expired_rate_limit_windows_are_pruned,
            task_announcements_reach_listeners_or_are_absent,
            review_detail_matches_the_separate_reads,
            review_detail_is_one_snapshot_under_concurrent_finishes,
        );
    };
    (@cases $factory:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let store = $factory().await;
                $crate::conformance::$case(store).await;
            }
        )*
    };
}

const T0: i64 = 1_800_000_000_000;
const LEASE: i64 = 30_000;
const EXPIRY: i64 = 3_600_000;

fn at(offset_ms: i64) -> Timestamp {
    Timestamp::from_millis(T0 + offset_ms)
}

fn sha(c: char) -> CommitSha {
    CommitSha::parse(&c.to_string().repeat(40)).expect("sha")
}

async fn user(store: &DynStore, email: &str) -> User {
    store
        .create_user(NewUser {
            id: UserId::generate(),
            email: Email::parse(email).expect("email"),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
            role: Role::User,
            permissions: vec![Permission::ReviewCreate],
            now: at(0),
        })
        .await
        .expect("create user")
}

async fn runner(store: &DynStore, owner: &User, id: &str, tags: &str) -> Runner {
    store
        .register_runner(RunnerRegistration {
            id: RunnerId::parse(id).expect("runner id"),
            name: id.into(),
            version: "test".into(),
            max_concurrency: 4,
            tags: TagSet::parse_comma_list(tags).expect("tags"),
            owner: owner.id.clone(),
            now: at(0),
        })
        .await
        .expect("register runner")
}

async fn enqueue(store: &DynStore, owner: &User, tags: &str, now: Timestamp) -> (Review, Task) {
    enqueue_with(store, owner, tags, now, 3).await
}

async fn enqueue_with(
    store: &DynStore,
    owner: &User,
    tags: &str,
    now: Timestamp,
    max_attempts: u32,
) -> (Review, Task) {
    store
        .enqueue_review(NewReview {
            id: ReviewId::generate(),
            task_id: TaskId::generate(),
            repo_url: RepoUrl::parse("https://git.example.com/g/r.git").expect("url"),
            base_sha: sha('a'),
            head_sha: sha('b'),
            branch: Some("main".into()),
            title: Some("t".into()),
            created_by: owner.id.clone(),
            required_tags: TagSet::parse_comma_list(tags).expect("tags"),
            max_attempts,
            expires_at: now.plus_millis(EXPIRY),
            change: None,
            spec: serde_json::json!({"k": "v"}),
            now,
        })
        .await
        .expect("enqueue")
}

async fn claim(store: &DynStore, r: &Runner, limit: u32, now: Timestamp) -> Vec<Task> {
    store
        .claim_tasks(Claim {
            runner_id: r.id.clone(),
            runner_tags: r.tags.clone(),
            limit,
            now,
            lease_until: now.plus_millis(LEASE),
        })
        .await
        .expect("claim")
}

fn tref(t: &Task, r: &Runner) -> TaskRef {
    TaskRef {
        task_id: t.id.clone(),
        runner_id: r.id.clone(),
        attempt: t.attempt,
    }
}

fn result(
    outcome: TaskOutcome,
    reason: Option<&str>,
    retryable: bool,
    now: Timestamp,
) -> TaskResult {
    TaskResult {
        outcome,
        reason: reason.map(Into::into),
        retryable,
        output: Some(serde_json::json!({"files": 3})),
        now,
        requeue_expires_at: now.plus_millis(EXPIRY),
    }
}

async fn task(store: &DynStore, id: &TaskId) -> Task {
    store
        .get_task(id)
        .await
        .expect("get task")
        .expect("task exists")
}

/// Users are unique by email; keys authenticate until revoked or expired.
pub async fn users_and_api_keys(store: DynStore) {
    let alice = user(&store, "Alice@Example.com").await;
    let again = store
        .create_user(NewUser {
            id: UserId::generate(),
            email: Email::parse("alice@example.com").expect("email"),
            password_hash: "x".into(),
            role: Role::Admin,
            permissions: vec![],
            now: at(0),
        })
        .await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    assert_eq!(store.count_admins().await.expect("count"), 0);
    let found = store.user_by_email(&alice.email).await.expect("by email");
    assert_eq!(found.as_ref(), Some(&alice));
    assert_eq!(
        found.map(|u| u.permissions),
        Some(vec![Permission::ReviewCreate])
    );

    let secret = ApiKeySecret::generate();
    let key = store
        .create_api_key(NewApiKey {
            id: ApiKeyId::generate(),
            user_id: alice.id.clone(),
            name: "ci".into(),
            prefix: secret.display_prefix(),
            digest: secret.digest(),
            now: at(0),
            expires_at: None,
        })
        .await
        .expect("create key");
    let (k, u) = store
        .authenticate_api_key(&secret.digest(), at(1))
        .await
        .expect("auth")
        .expect("key found");
    assert_eq!(
        (k.id.clone(), u.id.clone()),
        (key.id.clone(), alice.id.clone())
    );
    assert!(
        store
            .authenticate_api_key(&ApiKeySecret::generate().digest(), at(1))
            .await
            .expect("auth")
            .is_none()
    );

    store.touch_api_key(&key.id, at(5)).await.expect("touch");
    let listed = store.list_api_keys(&alice.id).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].last_used_at, Some(at(5)));

    let revoked = store.revoke_api_key(&key.id, at(10)).await.expect("revoke");
    assert_eq!(revoked.revoked_at, Some(at(10)));
    let again = store
        .revoke_api_key(&key.id, at(20))
        .await
        .expect("revoke twice");
    assert_eq!(
        again.revoked_at,
        Some(at(10)),
        "first revocation time is kept"
    );
    assert!(
        store
            .authenticate_api_key(&secret.digest(), at(11))
            .await
            .expect("auth")
            .is_none()
    );
    assert!(matches!(
        store.revoke_api_key(&ApiKeyId::generate(), at(0)).await,
        Err(StoreError::NotFound { .. })
    ));

    let expiring = ApiKeySecret::generate();
    store
        .create_api_key(NewApiKey {
            id: ApiKeyId::generate(),
            user_id: alice.id.clone(),
            name: "short".into(),
            prefix: expiring.display_prefix(),
            digest: expiring.digest(),
            now: at(0),
            expires_at: Some(at(100)),
        })
        .await
        .expect("create key");
    assert!(
        store
            .authenticate_api_key(&expiring.digest(), at(99))
            .await
            .expect("auth")
            .is_some()
    );
    assert!(
        store
            .authenticate_api_key(&expiring.digest(), at(100))
            .await
            .expect("auth")
            .is_none()
    );
}

/// Registration upserts by id, but only for the owner of the id.
pub async fn runner_registration_is_an_owned_upsert(store: DynStore) {
    let alice = user(&store, "alice@example.com").await;
    let bob = user(&store, "bob@example.com").await;
    let r1 = runner(&store, &alice, "r1", "linux").await;
    assert_eq!(r1.status, RunnerStatus::Online);
    assert_eq!(r1.max_concurrency, 4);
    let r1b = store
        .register_runner(RunnerRegistration {
            id: r1.id.clone(),
            name: "renamed".into(),
            version: "2".into(),
            max_concurrency: 8,
            tags: TagSet::parse_comma_list("gpu").expect("tags"),
            owner: alice.id.clone(),
            now: at(50),
        })
        .await
        .expect("re-register");
    assert_eq!((r1b.name.as_str(), r1b.max_concurrency), ("renamed", 8));
    assert_eq!(r1b.tags.to_vec(), vec!["gpu"]);
    assert_eq!(r1b.registered_at, at(0), "first registration time is kept");
    let stolen = store
        .register_runner(RunnerRegistration {
            id: r1.id.clone(),
            name: "mine".into(),
            version: "1".into(),
            max_concurrency: 1,
            tags: TagSet::default(),
            owner: bob.id.clone(),
            now: at(60),
        })
        .await;
    assert!(matches!(stolen, Err(StoreError::Conflict(_))), "{stolen:?}");

    let r2 = runner(&store, &bob, "r2", "").await;
    store
        .heartbeat(Heartbeat {
            runner_id: r2.id.clone(),
            status: RunnerStatus::Busy,
            active_jobs: 2,
            now: at(100),
            lease_until: at(100 + LEASE),
        })
        .await
        .expect("heartbeat");
    let list = store.list_runners().await.expect("list");
    let ids: Vec<_> = list.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["r2", "r1"], "newest heartbeat first");
    assert_eq!(list[0].status, RunnerStatus::Busy);
    assert_eq!(list[0].active_jobs, 2);
    assert!(
        store
            .get_runner(&RunnerId::parse("nope").expect("id"))
            .await
            .expect("get")
            .is_none()
    );
    let missing = store
        .heartbeat(Heartbeat {
            runner_id: RunnerId::parse("ghost").expect("id"),
            status: RunnerStatus::Online,
            active_jobs: 0,
            now: at(1),
            lease_until: at(2),
        })
        .await;
    assert!(matches!(missing, Err(StoreError::NotFound { .. })));
}

/// Many runners claiming at once never receive the same task twice, and
/// one task raced by two runners goes to exactly one.
pub async fn concurrent_claims_never_share_a_task(store: DynStore) {
    let alice = user(&store, "alice@example.com").await;
    let r1 = runner(&store, &alice, "r1", "").await;
    let r2 = runner(&store, &alice, "r2", "").await;
    let (_, only) = enqueue(&store, &alice, "", at(0)).await;
    let (a, b) = tokio::join!(claim(&store, &r1, 1, at(1)), claim(&store, &r2, 1, at(1)));
    assert_eq!(
        a.len() + b.len(),
        1,
        "exactly one runner wins the single task"
    );
    let winner = a.iter().chain(b.iter()).next().expect("one claim");
    assert_eq!(winner.id, only.id);
    assert_eq!(winner.attempt, Attempt(1));
    assert_eq!(winner.state, TaskState::PickedUp);

    for i in 0..40 {
        enqueue(&store, &alice, "", at(10 + i)).await;
    }
    let mut handles = Vec::new();
    for n in 0..8 {
        let store = store.clone();
        let r = runner(&store, &alice, &format!("racer{n}"), "").await;
        handles.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let batch = claim(&store, &r, 3, at(100)).await;
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
            assert!(seen.insert(id.clone()), "task {id} claimed twice");
        }
    }
    assert_eq!(seen.len(), 40);
}

/// Claims return oldest first, never more than asked, and only tasks whose
/// required tags the runner offers.
pub async fn claims_respect_limit_order_and_tags(store: DynStore) {
    let alice = user(&store, "alice@example.com").await;
    let plain = runner(&store, &alice, "plain", "").await;
    let gpu = runner(&store, &alice, "gpu", "gpu,linux").await;
    let (_, t_gpu) = enqueue(&store, &alice, "gpu", at(0)).await;
    let (_, t1) = enqueue(&store, &alice, "", at(1)).await;
    let (_, t2) = enqueue(&store, &alice, "", at(2)).await;
    let (_, t3) = enqueue(&store, &alice, "", at(3)).await;
    let (_, t_arm) = enqueue(&store, &alice, "arm", at(4)).await;
    assert!(claim(&store, &plain, 0, at(5)).await.is_empty());
    let got = claim(&store, &plain, 2, at(5)).await;
    let ids: Vec<_> = got.iter().map(|t| t.id.clone()).collect();
    assert_eq!(
        ids,
        vec![t1.id.clone(), t2.id.clone()],
        "oldest untagged first, limit 2"
    );
    let got = claim(&store, &plain, 10, at(6)).await;
    assert_eq!(
        got.iter().map(|t| t.id.clone()).collect::<Vec<_>>(),
        vec![t3.id]
    );
    let got = claim(&store, &gpu, 10, at(7)).await;
    assert_eq!(
        got.iter().map(|t| t.id.clone()).collect::<Vec<_>>(),
        vec![t_gpu.id]
    );
    assert!(
        claim(&store, &gpu, 10, at(8)).await.is_empty(),
        "arm task needs a runner tagged arm"
    );
    assert_eq!(task(&store, &t_arm.id).await.state, TaskState::Pending);
}

/// Phase, log and result calls with an old attempt get `StaleAttempt`; a
/// runner that never held the task gets `NotHolder`; after a re-queue the
/// old holder gets `NotActive`.
pub async fn fencing_refuses_stale_and_foreign_calls(store: DynStore) {
    let alice = user(&store, "alice@example.com").await;
    let r1 = runner(&store, &alice, "r1", "").await;
    let r2 = runner(&store, &alice, "r2", "").await;
    let (_, t) = enqueue(&store, &alice, "", at(0)).await;
    let first = claim(&store, &r1, 1, at(1)).await.remove(0);
    let phase = |now: Timestamp| PhaseReport {
        phase: Phase::Cloning,
        now,
        lease_until: now.plus_millis(LEASE),
    };
    let ok = store
        .report_phase(&tref(&first, &r1), phase(at(2)))
        .await
        .expect("phase");
    assert_eq!(
        (ok.state, ok.phase),
        (TaskState::Executing, Some(Phase::Cloning))
    );
    assert_eq!(
        ok.lease_expires_at,
        Some(at(2 + LEASE)),
        "phase reports renew the lease"
    );

    let foreign = store.report_phase(&tref(&first, &r2), phase(at(3))).await;
    assert!(matches!(foreign, Err(StoreError::NotHolder)), "{foreign:?}");

    let report = store
        .reap_expired_leases(at(3 + LEASE), at(3 + LEASE + EXPIRY))
        .await
        .expect("reap");
    assert_eq!(report.requeued, vec![t.id.clone()]);
    let after_requeue = store
        .report_phase(&tref(&first, &r1), phase(at(4 + LEASE)))
        .await;
    assert!(
        matches!(
            after_requeue,
            Err(StoreError::NotActive {
                state: TaskState::Pending
            })
        ),
        "{after_requeue:?}"
    );

    let second = claim(&store, &r2, 1, at(5 + LEASE)).await.remove(0);
    assert_eq!(second.attempt, Attempt(2));
    let stale = store
        .report_phase(&tref(&first, &r1), phase(at(6 + LEASE)))
        .await;
    assert!(
        matches!(
            stale,
            Err(StoreError::StaleAttempt {
                current: Attempt(2),
                presented: Attempt(1)
            })
        ),
        "{stale:?}"
    );
    let stale_logs = store
        .append_logs(
            &tref(&first, &r1),
            LogAppend {
                lines: vec![line("late")],
                max_bytes: 1000,
                now: at(7 + LEASE),
            },
        )
        .await;
    assert!(matches!(stale_logs, Err(StoreError::StaleAttempt { .. })));
    let stale_result = store
        .submit_result(
            &tref(&first, &r1),
            result(TaskOutcome::Succeeded, None, false, at(8 + LEASE)),
        )
        .await;
    assert!(matches!(stale_result, Err(StoreError::StaleAttempt { .. })));
    let current = task(&store, &t.id).await;
    assert_eq!(
        (current.state, current.runner_id),
        (TaskState::PickedUp, Some(r2.id.clone()))
    );
    assert!(current.result.is_none(), "stale calls changed nothing");
    let missing = store
        .report_phase(
            &TaskRef {
                task_id: TaskId::generate(),
                runner_id: r1.id.clone(),
                attempt: Attempt(1),
            },
            phase(at(9)),
        )
        .await;
    assert!(matches!(missing, Err(StoreError::NotFound { .. })));
}

fn line(text: &str) -> LogLine {
    LogLine {
        seq: 0,
        attempt: Attempt(0),
        stream: "stdout".into(),
        text: text.into(),
        at: at(0),
    }
}

/// An expired lease sends the task back to pending with the next claim
/// getting attempt + 1; after `max_attempts` claims it fails with a reason.
pub async fn expired_leases_requeue_then_fail_after_max_attempts(store: DynStore) {
    let alice = user(&store, "alice@example.com").await;
    let r = runner(&store, &alice, "r1", "").await;
    let (review, t) = enqueue_with(&store, &alice, "", at(0), 2).await;
    let c1 = claim(&store, &r, 1, at(1)).await.remove(0);
    assert_eq!(c1.lease_expires_at, Some(at(1 + LEASE)));
    let early = store
        .reap_expired_leases(at(1 + LEASE), at(EXPIRY))
        .await
        .expect("reap");
    assert_eq!(
        early,
        ReapReport::default(),
        "a lease is valid until its deadline"
    );
    let rep = store
        .reap_expired_leases(at(2 + LEASE), at(2 + LEASE + EXPIRY))
        .await
        .expect("reap");
    assert_eq!(rep.requeued, vec![t.id.clone()]);
    let pending = task(&store, &t.id).await;
    assert_eq!(
        (pending.state, pending.attempt, pending.runner_id.clone()),
        (TaskState::Pending, Attempt(1), None)
    );
    assert_eq!(
        pending.expires_at,
        at(2 + LEASE + EXPIRY),
        "re-queued tasks get a fresh expiry"
    );

    let c2 = claim(&store, &r, 1, at(3 + LEASE)).await.remove(0);
    assert_eq!(c2.attempt, Attempt(2));
    let rep = store
        .reap_expired_leases(at(4 + 2 * LEASE), at(EXPIRY * 2))
        .await
        .expect("reap");
    assert_eq!(rep.failed, vec![t.id.clone()]);
    let failed = task(&store, &t.id).await;
    assert_eq!(failed.state, TaskState::Failed);
    let reason = failed.failure_reason.clone().unwrap_or_default();
    assert!(reason.starts_with("max_attempts_exceeded"), "{reason}");
    assert!(failed.finished_at.is_some());
    let review = store
        .get_review(&review.id)
        .await
        .expect("get")
        .expect("review");
    assert_eq!(review.status, ReviewStatus::Failed);

    let attempts = store.task_attempts(&t.id).await.expect("attempts");
    assert_eq!(attempts.len(), 2);
    assert!(
        attempts
            .iter()
            .all(|a| a.outcome.as_deref() == Some("lease_expired"))
    );
    let kinds: Vec<_> = store
        .task_events(&t.id)
        .await
        .expect("events")
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            "enqueued",
            "claimed",
            "lease_expired",
            "requeued",
            "claimed",
            "lease_expired",
            "failed"
        ]
    );
}

/// Heartbeats renew the leases of the runner's active tasks and return the
/// tasks a user asked to cancel.
pub async fn heartbeats_renew_leases_and_deliver_cancellations(store: DynStore) {
    let alice = user(&store, "alice@example.com").await;
    let r1 = runner(&store, &alice, "r1", "").await;
    let r2 = runner(&store, &alice, "r2", "").await;
    let (_, a) = enqueue(&store, &alice, "", at(0)).await;
    let (_, b) = enqueue(&store, &alice, "", at(1)).await;
    claim(&store, &r1, 2, at(2)).await;
    let hb = |r: &Runner, now: Timestamp| Heartbeat {
        runner_id: r.id.clone(),
        status: RunnerStatus::Busy,
        active_jobs: 2,
        now,
        lease_until: now.plus_millis(LEASE),
    };
    let out = store
        .heartbeat(hb(&r1, at(20_000)))
        .await
        .expect("heartbeat");
    let renewed: HashSet<_> = out.renewed.into_iter().collect();
    assert_eq!(renewed, HashSet::from([a.id.clone(), b.id.clone()]));
    assert!(out.cancel.is_empty());
    assert_eq!(out.runner.last_heartbeat_at, at(20_000));
    let rep = store
        .reap_expired_leases(at(2 + LEASE + 1), at(EXPIRY))
        .await
        .expect("reap");
    assert!(
        rep.requeued.is_empty(),
        "renewed leases did not expire: {rep:?}"
    );
    assert_eq!(
        task(&store, &a.id).await.lease_expires_at,
        Some(at(20_000 + LEASE))
    );

    let cancelled = store.cancel_task(&a.id, at(21_000)).await.expect("cancel");
    assert!(cancelled.cancel_requested);
    assert_eq!(
        cancelled.state,
        TaskState::PickedUp,
        "an active task runs until its runner stops it"
    );
    let out = store
        .heartbeat(hb(&r1, at(22_000)))
        .await
        .expect("heartbeat");
    assert_eq!(out.cancel, vec![a.id.clone()]);
    let other = store
        .heartbeat(hb(&r2, at(22_000)))
        .await
        .expect("heartbeat");
    assert!(other.cancel.is_empty() && other.renewed.is_empty());

    let done = store
        .submit_result(
            &tref(&cancelled, &r1),
            result(
                TaskOutcome::Cancelled,
                Some("cancelled by user"),
                false,
                at(23_000),
            ),
        )
        .await
        .expect("report cancelled");
    assert_eq!(done.task.state, TaskState::Cancelled);

    // A runner that goes silent after a cancellation request: the reaper
    // ends the task cancelled, not re-queued.
    store.cancel_task(&b.id, at(24_000)).await.expect("cancel");
    let rep = store
        .reap_expired_leases(at(23_000 + LEASE), at(EXPIRY))
        .await
        .expect("reap");
    assert_eq!(rep.cancelled, vec![b.id.clone()]);
    assert_eq!(task(&store, &b.id).await.state, TaskState::Cancelled);
}

/// The same result twice is recorded once; a different one for the same
/// attempt is a conflict; a retryable failure re-queues while attempts
/// remain.
pub async fn results_are_idempotent_and_retryable_failures_requeue(store: DynStore) {
    let alice = user(&store, "alice@example.com").await;
    let r = runner(&store, &alice, "r1", "").await;
    let (review, t) = enqueue(&store, &alice, "", at(0)).await;
    let c = claim(&store, &r, 1, at(1)).await.remove(0);
    let ok = result(TaskOutcome::Succeeded, None, false, at(2));
    let first = store
        .submit_result(&tref(&c, &r), ok.clone())
        .await
        .expect("submit");
    assert!(!first.duplicate);
    assert_eq!(first.task.state, TaskState::Completed);
    assert_eq!(first.task.result, Some(serde_json::json!({"files": 3})));
    let again = store
        .submit_result(
            &tref(&c, &r),
            TaskResult {
                now: at(3),
                ..ok.clone()
            },
        )
        .await
        .expect("resubmit");
    assert!(again.duplicate);
    assert_eq!(again.task, first.task, "nothing changed");
    let different = store
        .submit_result(
            &tref(&c, &r),
            result(TaskOutcome::Failed, Some("boom"), false, at(4)),
        )
        .await;
    assert!(
        matches!(different, Err(StoreError::Conflict(_))),
        "{different:?}"
    );
    let review = store
        .get_review(&review.id)
        .await
        .expect("get")
        .expect("review");
    assert_eq!(review.status, ReviewStatus::Completed);
    let completed_events = store
        .task_events(&t.id)
        .await
        .expect("events")
        .into_iter()
        .filter(|e| e.kind == "completed")
        .count();
    assert_eq!(completed_events, 1);

    let (_, t2) = enqueue_with(&store, &alice, "", at(10), 2).await;
    let c1 = claim(&store, &r, 1, at(11)).await.remove(0);
    let retry = store
        .submit_result(
            &tref(&c1, &r),
            result(TaskOutcome::Failed, Some("runner_restarted"), true, at(12)),
        )
        .await
        .expect("retryable failure");
    assert_eq!(retry.task.state, TaskState::Pending);
    assert_eq!(retry.task.id, t2.id);
    let c2 = claim(&store, &r, 1, at(13)).await.remove(0);
    assert_eq!(c2.attempt, Attempt(2));
    let last = store
        .submit_result(
            &tref(&c2, &r),
            result(TaskOutcome::Failed, Some("interrupted"), true, at(14)),
        )
        .await
        .expect("last attempt");
    assert_eq!(last.task.state, TaskState::Failed);
    assert!(
        last.task
            .failure_reason
            .as_deref()
            .unwrap_or("")
            .contains("interrupted")
    );
    let fatal_review = enqueue(&store, &alice, "", at(20)).await.1;
    let c = claim(&store, &r, 1, at(21)).await.remove(0);
    assert_eq!(c.id, fatal_review.id);
    let fatal = store
        .submit_result(
            &tref(&c, &r),
            result(TaskOutcome::Failed, Some("timeout"), false, at(22)),
        )
        .await
        .expect("fatal failure");
    assert_eq!(
        (fatal.task.state, fatal.task.failure_reason.as_deref()),
        (TaskState::Failed, Some("timeout"))
    );
}

/// Pending tasks cancel at once; finished ones cannot be cancelled.
pub async fn cancellation_of_pending_and_finished_tasks(store: DynStore) {
    let alice = user(&store, "alice@example.com").await;
    let r = runner(&store, &alice, "r1", "").await;
    let (review, t) = enqueue(&store, &alice, "", at(0)).await;
    let c = store.cancel_task(&t.id, at(1)).await.expect("cancel");
    assert_eq!(c.state, TaskState::Cancelled);
    assert!(
        claim(&store, &r, 1, at(2)).await.is_empty(),
        "cancelled tasks are never claimed"
    );
    let review = store
        .get_review(&review.id)
        .await
        .expect("get")
        .expect("review");
    assert_eq!(review.status, ReviewStatus::Cancelled);
    let twice = store.cancel_task(&t.id, at(3)).await;
    assert!(matches!(twice, Err(StoreError::Conflict(_))), "{twice:?}");
    let missing = store.cancel_task(&TaskId::generate(), at(3)).await;
    assert!(matches!(missing, Err(StoreError::NotFound { .. })));
}

/// Pending tasks past their expiry end `expired` with a reason and are
/// never claimed.
pub async fn unclaimed_tasks_expire(store: DynStore) {
    let alice = user(&store, "alice@example.com").await;
    let r = runner(&store, &alice, "r1", "gpu").await;
    let (review, t) = enqueue(&store, &alice, "arm", at(0)).await;
    assert!(
        store
            .expire_unclaimed(at(EXPIRY - 1))
            .await
            .expect("expire")
            .is_empty()
    );
    assert_eq!(
        store.expire_unclaimed(at(EXPIRY)).await.expect("expire"),
        vec![t.id.clone()]
    );
    let expired = task(&store, &t.id).await;
    assert_eq!(expired.state, TaskState::Expired);
    assert!(
        expired
            .failure_reason
            .as_deref()
            .unwrap_or("")
            .contains("arm")
    );
    assert_eq!(
        store
            .get_review(&review.id)
            .await
            .expect("get")
            .map(|r| r.status),
        Some(ReviewStatus::Failed)
    );
    let (_, late) = enqueue(&store, &alice, "gpu", at(0)).await;
    assert!(
        claim(&store, &r, 1, at(EXPIRY + 1)).await.is_empty(),
        "an expired task is not claimable even before the sweep"
    );
    assert_eq!(task(&store, &late.id).await.state, TaskState::Pending);
}

/// Log lines are stored in order up to the per-task cap, then dropped with
/// one marker line.
pub async fn logs_are_capped_per_task(store: DynStore) {
    let alice = user(&store, "alice@example.com").await;
    let r = runner(&store, &alice, "r1", "").await;
    let (_, t) = enqueue(&store, &alice, "", at(0)).await;
    let c = claim(&store, &r, 1, at(1)).await.remove(0);
    let append = |lines: Vec<LogLine>| LogAppend {
        lines,
        max_bytes: 20,
        now: at(2),
    };
    let out = store
        .append_logs(&tref(&c, &r), append(vec![line("hello"), line("world")]))
        .await
        .expect("append");
    assert_eq!(
        out,
        LogAppendOutcome {
            accepted: 2,
            dropped: 0,
            truncated: false
        }
    );
    let out = store
        .append_logs(&tref(&c, &r), append(vec![line("abc"), line("0123456789")]))
        .await
        .expect("append");
    assert_eq!(
        out,
        LogAppendOutcome {
            accepted: 1,
            dropped: 1,
            truncated: true
        }
    );
    let out = store
        .append_logs(&tref(&c, &r), append(vec![line("x")]))
        .await
        .expect("append");
    assert_eq!(
        out,
        LogAppendOutcome {
            accepted: 0,
            dropped: 1,
            truncated: true
        }
    );
    let logs = store.task_logs(&t.id, 0, 100).await.expect("logs");
    let texts: Vec<_> = logs.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(texts.len(), 4, "{texts:?}");
    assert_eq!(&texts[..3], ["hello", "world", "abc"]);
    assert!(texts[3].contains("log truncated"), "{texts:?}");
    assert!(logs.windows(2).all(|w| w[0].seq < w[1].seq));
    assert!(logs.iter().all(|l| l.attempt == Attempt(1)));
    let tail = store.task_logs(&t.id, logs[1].seq, 1).await.expect("logs");
    assert_eq!(
        tail.iter().map(|l| l.text.as_str()).collect::<Vec<_>>(),
        ["abc"]
    );
}

/// Runners silent since before the cutoff become offline, once.
pub async fn silent_runners_are_marked_offline(store: DynStore) {
    let alice = user(&store, "alice@example.com").await;
    let quiet = runner(&store, &alice, "quiet", "").await;
    let chatty = runner(&store, &alice, "chatty", "").await;
    store
        .heartbeat(Heartbeat {
            runner_id: chatty.id.clone(),
            status: RunnerStatus::Online,
            active_jobs: 0,
            now: at(50_000),
            lease_until: at(50_000 + LEASE),
        })
        .await
        .expect("heartbeat");
    let off = store
        .mark_silent_runners_offline(at(40_000), at(60_000))
        .await
        .expect("offline");
    assert_eq!(off, vec![quiet.id.clone()]);
    let again = store
        .mark_silent_runners_offline(at(40_000), at(61_000))
        .await
        .expect("offline");
    assert!(again.is_empty(), "already offline");
    let q = store
        .get_runner(&quiet.id)
        .await
        .expect("get")
        .expect("runner");
    assert_eq!(q.status, RunnerStatus::Offline);
    let c = store
        .get_runner(&chatty.id)
        .await
        .expect("get")
        .expect("runner");
    assert_eq!(c.status, RunnerStatus::Online);
}

/// Reviews list newest first with status and date filters, paginated, and
/// queue counts follow task states.
pub async fn reviews_list_with_filters_and_counts(store: DynStore) {
    let alice = user(&store, "alice@example.com").await;
    let r = runner(&store, &alice, "r1", "").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(enqueue(&store, &alice, "", at(i * 1000)).await.0.id);
    }
    let c = claim(&store, &r, 1, at(6000)).await.remove(0);
    store
        .submit_result(
            &tref(&c, &r),
            result(TaskOutcome::Succeeded, None, false, at(7000)),
        )
        .await
        .expect("submit");
    let (page, total) = store
        .list_reviews(&ReviewFilter {
            limit: 2,
            offset: 0,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(total, 5);
    assert_eq!(
        page.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
        vec![ids[4].clone(), ids[3].clone()]
    );
    let (page, _) = store
        .list_reviews(&ReviewFilter {
            limit: 2,
            offset: 4,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(
        page.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
        vec![ids[0].clone()]
    );
    let (done, total) = store
        .list_reviews(&ReviewFilter {
            status: Some(ReviewStatus::Completed),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!((done.len(), total), (1, 1));
    assert_eq!(done[0].id, ids[0]);
    let (window, total) = store
        .list_reviews(&ReviewFilter {
            start: Some(at(1000)),
            end: Some(at(3000)),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(total, 2);
    assert_eq!(
        window.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
        vec![ids[2].clone(), ids[1].clone()]
    );
    let counts: std::collections::HashMap<_, _> = store
        .queue_counts()
        .await
        .expect("counts")
        .into_iter()
        .collect();
    assert_eq!(counts.get(&TaskState::Pending), Some(&4));
    assert_eq!(counts.get(&TaskState::Completed), Some(&1));
    store.ping().await.expect("ping");
}

/// Configuration items: create, unique names per kind, exactly one default
/// per kind (switching it is atomic), update, list by name, delete.
pub async fn config_items_crud_names_and_one_default(store: DynStore) {
    let now = Timestamp::from_millis(1_000);
    let write = |kind, name: &str, is_default, n: i64| ConfigItemWrite {
        kind,
        id: ConfigId::generate(),
        name: name.into(),
        is_default,
        body: serde_json::json!({ "n": n }),
        now,
    };
    let a = store
        .create_config_item(write(ConfigKind::AiConfig, "b-openai", true, 1))
        .await
        .expect("create a");
    assert!(a.is_default);
    assert_eq!(a.body["n"], 1);
    // Same name in another kind is fine; in the same kind it conflicts.
    store
        .create_config_item(write(ConfigKind::ReviewRule, "b-openai", true, 2))
        .await
        .expect("other kind");
    let dup = store
        .create_config_item(write(ConfigKind::AiConfig, "b-openai", false, 3))
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");

    // A new default replaces the old one.
    let b = store
        .create_config_item(write(ConfigKind::AiConfig, "a-ollama", true, 4))
        .await
        .expect("create b");
    let default = store
        .default_config_item(ConfigKind::AiConfig)
        .await
        .expect("default")
        .expect("one default");
    assert_eq!(default.id, b.id);
    let listed = store
        .list_config_items(ConfigKind::AiConfig)
        .await
        .expect("list");
    assert_eq!(
        listed.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(),
        ["a-ollama", "b-openai"]
    );
    assert_eq!(listed.iter().filter(|i| i.is_default).count(), 1);

    // Update: rename, make default again, new body.
    let later = Timestamp::from_millis(2_000);
    let updated = store
        .update_config_item(ConfigItemWrite {
            kind: ConfigKind::AiConfig,
            id: a.id.clone(),
            name: "c-openai".into(),
            is_default: true,
            body: serde_json::json!({ "n": 5 }),
            now: later,
        })
        .await
        .expect("update");
    assert_eq!(
        (
            updated.name.as_str(),
            updated.body["n"].as_i64(),
            updated.updated_at,
            updated.created_at
        ),
        ("c-openai", Some(5), later, now)
    );
    let default = store
        .default_config_item(ConfigKind::AiConfig)
        .await
        .expect("default")
        .expect("one default");
    assert_eq!(default.id, a.id);
    let renamed_into_taken = store
        .update_config_item(ConfigItemWrite {
            kind: ConfigKind::AiConfig,
            id: a.id.clone(),
            name: "a-ollama".into(),
            is_default: true,
            body: serde_json::json!({}),
            now: later,
        })
        .await;
    assert!(matches!(renamed_into_taken, Err(StoreError::Conflict(_))));
    let missing = store
        .update_config_item(write(ConfigKind::AiConfig, "zzz", false, 0))
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound { .. })),
        "{missing:?}"
    );

    // Delete.
    store
        .delete_config_item(ConfigKind::AiConfig, &a.id)
        .await
        .expect("delete");
    assert!(
        store
            .get_config_item(ConfigKind::AiConfig, &a.id)
            .await
            .expect("get")
            .is_none()
    );
    assert!(
        store
            .default_config_item(ConfigKind::AiConfig)
            .await
            .expect("default")
            .is_none()
    );
    let again = store.delete_config_item(ConfigKind::AiConfig, &a.id).await;
    assert!(matches!(again, Err(StoreError::NotFound { .. })));
    assert!(
        store
            .get_config_item(ConfigKind::AiConfig, &b.id)
            .await
            .expect("get b")
            .is_some()
    );
}

/// Projects: a sync inserts then refreshes (same id; `enabled` and settings
/// kept), settings updates, every list filter with totals and escaping of
/// `LIKE` wildcards, webhook status, stats.
pub async fn projects_upsert_keep_settings_filter_and_count(store: DynStore) {
    let gitlab = ConfigId::generate();
    let github = ConfigId::generate();
    let now = Timestamp::from_millis(10_000);
    let up = |cfg: &ConfigId, t: PlatformType, ext: &str, path: &str, at: i64| ProjectUpsert {
        id: ProjectId::generate(),
        platform_config_id: cfg.clone(),
        platform_type: t,
        external_id: ext.into(),
        path: path.into(),
        name: path.rsplit('/').next().unwrap_or(path).into(),
        web_url: format!("https://forge.example/{path}"),
        clone_url: format!("https://forge.example/{path}.git"),
        default_branch: Some("main".into()),
        enabled_if_new: true,
        now: Timestamp::from_millis(at),
    };
    let (a, created) = store
        .upsert_project(up(
            &gitlab,
            PlatformType::Gitlab,
            "1",
            "group/api_server",
            10_000,
        ))
        .await
        .expect("insert");
    assert!(created);
    assert_eq!(
        (a.enabled, a.webhook_status, a.settings.clone()),
        (true, WebhookStatus::Unknown, serde_json::json!({}))
    );
    let a = store
        .update_project(&a.id, false, serde_json::json!({"autoReview": false}), now)
        .await
        .expect("settings");
    let (again, created) = store
        .upsert_project(up(
            &gitlab,
            PlatformType::Gitlab,
            "1",
            "group/api-server-renamed",
            20_000,
        ))
        .await
        .expect("refresh");
    assert!(!created);
    assert_eq!(again.id, a.id);
    assert_eq!(again.path, "group/api-server-renamed");
    assert_eq!(
        (
            again.enabled,
            again.settings["autoReview"].as_bool(),
            again.synced_at
        ),
        (false, Some(false), Timestamp::from_millis(20_000))
    );
    assert_eq!(again.created_at, Timestamp::from_millis(10_000));
    // The same external id under another config is another project.
    let (b, created) = store
        .upsert_project(up(
            &github,
            PlatformType::Github,
            "1",
            "owner/apixserver",
            10_000,
        ))
        .await
        .expect("github");
    assert!(created && b.id != a.id);
    store
        .upsert_project(up(&github, PlatformType::Github, "2", "owner/web", 10_000))
        .await
        .expect("github 2");
    store
        .set_webhook_status(&b.id, WebhookStatus::Active, now)
        .await
        .expect("hook");

    let list = |f: ProjectFilter| {
        let store = store.clone();
        async move {
            let (items, total) = store.list_projects(&f).await.expect("list");
            (items.into_iter().map(|p| p.path).collect::<Vec<_>>(), total)
        }
    };
    let all = ProjectFilter {
        limit: 50,
        ..ProjectFilter::default()
    };
    assert_eq!(
        list(all.clone()).await,
        (
            vec![
                "group/api-server-renamed".to_owned(),
                "owner/apixserver".to_owned(),
                "owner/web".to_owned()
            ],
            3
        )
    );
    // `_` is a literal, not a LIKE wildcard; search is case-insensitive.
    let (found, _) = list(ProjectFilter {
        search: Some("API_".into()),
        ..all.clone()
    })
    .await;
    assert!(found.is_empty(), "{found:?}");
    let (found, n) = list(ProjectFilter {
        search: Some("API".into()),
        ..all.clone()
    })
    .await;
    assert_eq!(n, 2, "{found:?}");
    assert_eq!(
        list(ProjectFilter {
            platform_type: Some(PlatformType::Github),
            ..all.clone()
        })
        .await
        .1,
        2
    );
    assert_eq!(
        list(ProjectFilter {
            platform_config_id: Some(gitlab.clone()),
            ..all.clone()
        })
        .await
        .1,
        1
    );
    assert_eq!(
        list(ProjectFilter {
            enabled: Some(false),
            ..all.clone()
        })
        .await
        .0,
        ["group/api-server-renamed"]
    );
    assert_eq!(
        list(ProjectFilter {
            webhook_status: Some(WebhookStatus::Active),
            ..all.clone()
        })
        .await
        .0,
        ["owner/apixserver"]
    );
    let page = list(ProjectFilter {
        limit: 1,
        offset: 1,
        ..all.clone()
    })
    .await;
    assert_eq!(page, (vec!["owner/apixserver".to_owned()], 3));

    assert_eq!(
        store
            .project_by_external_id(&github, "2")
            .await
            .expect("by external")
            .map(|p| p.path),
        Some("owner/web".to_owned())
    );
    assert!(
        store
            .project_by_external_id(&gitlab, "2")
            .await
            .expect("by external")
            .is_none()
    );
    let stats = store.project_stats().await.expect("stats");
    assert_eq!((stats.total, stats.enabled), (3, 2));
    assert_eq!(
        stats.by_platform,
        [(PlatformType::Github, 2), (PlatformType::Gitlab, 1)]
    );
    assert!(
        stats
            .by_webhook_status
            .contains(&(WebhookStatus::Active, 1))
    );
    let missing = ProjectId::generate();
    assert!(matches!(
        store
            .update_project(&missing, true, serde_json::json!({}), now)
            .await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store
            .set_webhook_status(&missing, WebhookStatus::Error, now)
            .await,
        Err(StoreError::NotFound { .. })
    ));
}

/// Webhook deliveries: a redelivery (same platform and delivery id) is not
/// recorded again, deliveries without an id never collide, the outcome is
/// updated, and the list filters and orders newest first.
pub async fn webhook_deliveries_are_recorded_once(store: DynStore) {
    let ev = |id: &str, platform: PlatformType, delivery: Option<&str>, at: i64| WebhookEvent {
        id: id.into(),
        platform,
        delivery_id: delivery.map(str::to_owned),
        event: "merge_request/open".into(),
        platform_config_id: Some(ConfigId::generate()),
        project_external_id: Some("42".into()),
        change_number: Some(7),
        outcome: "received".into(),
        reason: None,
        review_id: None,
        received_at: Timestamp::from_millis(at),
        updated_at: Timestamp::from_millis(at),
    };
    let first = store
        .record_webhook_event(ev("e1", PlatformType::Gitlab, Some("d-1"), 1_000))
        .await
        .expect("record")
        .expect("new");
    assert_eq!(first.change_number, Some(7));
    assert!(
        store
            .record_webhook_event(ev("e2", PlatformType::Gitlab, Some("d-1"), 2_000))
            .await
            .expect("redelivery")
            .is_none(),
        "a redelivery must not be recorded again"
    );
    // The same id on another platform is another delivery.
    assert!(
        store
            .record_webhook_event(ev("e3", PlatformType::Github, Some("d-1"), 3_000))
            .await
            .expect("other platform")
            .is_some()
    );
    for (id, at) in [("e4", 4_000), ("e5", 5_000)] {
        assert!(
            store
                .record_webhook_event(ev(id, PlatformType::Gitlab, None, at))
                .await
                .expect("no delivery id")
                .is_some()
        );
    }
    let review = ReviewId::generate();
    let done = store
        .finish_webhook_event(
            "e1",
            "queued",
            None,
            Some(&review),
            Timestamp::from_millis(6_000),
        )
        .await
        .expect("finish");
    assert_eq!(
        (done.outcome.as_str(), done.review_id, done.updated_at),
        ("queued", Some(review), Timestamp::from_millis(6_000))
    );
    store
        .finish_webhook_event(
            "e4",
            "refused",
            Some("project disabled"),
            None,
            Timestamp::from_millis(6_000),
        )
        .await
        .expect("finish");
    assert!(matches!(
        store
            .finish_webhook_event("nope", "queued", None, None, Timestamp::from_millis(1))
            .await,
        Err(StoreError::NotFound { .. })
    ));
    // A failed delivery can be redelivered and handled again.
    store
        .record_webhook_event(ev("e6", PlatformType::Github, Some("d-9"), 5_500))
        .await
        .expect("record")
        .expect("new");
    let failed = store
        .finish_webhook_event("e6", "failed", Some("forge down"), None, at(5_600))
        .await
        .expect("finish");
    assert_eq!(failed.delivery_id, None);
    assert!(
        store
            .record_webhook_event(ev("e7", PlatformType::Github, Some("d-9"), 5_700))
            .await
            .expect("redelivery")
            .is_some(),
        "a failed delivery's redelivery is handled again"
    );
    let (all, total) = store
        .list_webhook_events(&WebhookEventFilter {
            outcome: None,
            platform: None,
            limit: 10,
            offset: 0,
        })
        .await
        .expect("list");
    assert_eq!(total, 6);
    assert_eq!(
        all.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["e7", "e6", "e5", "e4", "e3", "e1"]
    );
    let (refused, n) = store
        .list_webhook_events(&WebhookEventFilter {
            platform: Some(PlatformType::Gitlab),
            outcome: Some("refused".into()),
            limit: 10,
            offset: 0,
        })
        .await
        .expect("filtered");
    assert_eq!(
        (n, refused[0].reason.as_deref()),
        (1, Some("project disabled"))
    );
}

/// Reviews of a forge change: rounds count up per change; a new review
/// cancels a pending older one at once and flags a running one for
/// cancellation (superseded), and the list filters by project.
pub async fn change_reviews_number_rounds_and_supersede_older_ones(store: DynStore) {
    let owner = user(&store, "owner@example.com").await;
    let runner = runner(&store, &owner, "r1", "").await;
    let project = ProjectId::generate();
    let change = |number: u64| ReviewChange {
        project_id: project.clone(),
        number,
        send_to_platform: true,
    };
    let mk = |c: Option<ReviewChange>, ms: i64| NewReview {
        id: ReviewId::generate(),
        task_id: TaskId::generate(),
        repo_url: RepoUrl::parse("https://git.example.com/g/r.git").expect("url"),
        base_sha: sha('a'),
        head_sha: sha('b'),
        branch: None,
        title: None,
        created_by: owner.id.clone(),
        required_tags: TagSet::default(),
        max_attempts: 3,
        expires_at: at(ms).plus_millis(EXPIRY),
        change: c,
        spec: serde_json::json!({}),
        now: at(ms),
    };
    let (r1, t1) = store
        .enqueue_review(mk(Some(change(7)), 1_000))
        .await
        .expect("r1");
    assert_eq!((r1.round_number, r1.change.clone()), (1, Some(change(7))));
    let (r2, t2) = store
        .enqueue_review(mk(Some(change(7)), 2_000))
        .await
        .expect("r2");
    assert_eq!(r2.round_number, 2);
    let t1 = store.get_task(&t1.id).await.expect("get").expect("t1");
    assert_eq!(t1.state, TaskState::Cancelled);
    assert_eq!(
        store
            .get_review(&r1.id)
            .await
            .expect("get")
            .map(|r| r.status),
        Some(ReviewStatus::Cancelled)
    );
    assert!(
        store
            .task_events(&t1.id)
            .await
            .expect("events")
            .iter()
            .any(|e| e.detail.contains("superseded by review"))
    );
    // Round 2 is running when round 3 arrives: flagged, not ended.
    let claimed = claim(&store, &runner, 1, at(2_500)).await;
    assert_eq!(claimed[0].id, t2.id);
    let (r3, _) = store
        .enqueue_review(mk(Some(change(7)), 3_000))
        .await
        .expect("r3");
    assert_eq!(r3.round_number, 3);
    let t2 = store.get_task(&t2.id).await.expect("get").expect("t2");
    assert!(t2.cancel_requested && t2.state.is_active(), "{t2:?}");
    // The runner stops it; the server's reason is kept.
    let ended = store
        .submit_result(
            &tref(&t2, &runner),
            result(
                TaskOutcome::Cancelled,
                Some("cancelled by user"),
                false,
                at(3_500),
            ),
        )
        .await
        .expect("cancelled");
    assert_eq!(ended.task.state, TaskState::Cancelled);
    assert!(
        ended
            .task
            .failure_reason
            .as_deref()
            .unwrap_or("")
            .starts_with("superseded by review"),
        "{:?}",
        ended.task.failure_reason
    );
    // Other changes and plain reviews are untouched.
    let (other, _) = store
        .enqueue_review(mk(Some(change(8)), 4_000))
        .await
        .expect("other");
    assert_eq!(other.round_number, 1);
    let (plain, _) = store.enqueue_review(mk(None, 5_000)).await.expect("plain");
    assert_eq!((plain.round_number, plain.change), (1, None));
    let (of_project, n) = store
        .list_reviews(&ReviewFilter {
            project_id: Some(project.clone()),
            limit: 50,
            ..ReviewFilter::default()
        })
        .await
        .expect("list");
    assert_eq!(n, 4);
    assert!(of_project.iter().all(|r| r.change.is_some()));
    let (of_change, n) = store
        .list_reviews(&ReviewFilter {
            project_id: Some(project.clone()),
            change_number: Some(7),
            limit: 1,
            ..ReviewFilter::default()
        })
        .await
        .expect("list");
    assert_eq!((n, of_change[0].round_number), (3, 3), "newest round first");
}

/// Push-back jobs: only finished reviews that go to the forge are claimed,
/// a live lease keeps others away, a retry waits for its time, final
/// states stick; change threads round-trip.
pub async fn pushbacks_are_leased_retried_and_finished(store: DynStore) {
    let owner = user(&store, "owner@example.com").await;
    let runner = runner(&store, &owner, "r1", "").await;
    let project = ProjectId::generate();
    let mk = |send: bool, number: u64| NewReview {
        id: ReviewId::generate(),
        task_id: TaskId::generate(),
        repo_url: RepoUrl::parse("https://git.example.com/g/r.git").expect("url"),
        base_sha: sha('a'),
        head_sha: sha('b'),
        branch: None,
        title: None,
        created_by: owner.id.clone(),
        required_tags: TagSet::default(),
        max_attempts: 3,
        expires_at: at(0).plus_millis(EXPIRY),
        change: Some(ReviewChange {
            project_id: project.clone(),
            number,
            send_to_platform: send,
        }),
        spec: serde_json::json!({}),
        now: at(0),
    };
    let (posted, _) = store.enqueue_review(mk(true, 1)).await.expect("posted");
    let (quiet, _) = store.enqueue_review(mk(false, 2)).await.expect("quiet");
    assert_eq!(
        store
            .push_state(&posted.id)
            .await
            .expect("state")
            .state
            .as_deref(),
        Some("pending")
    );
    assert_eq!(
        store.push_state(&quiet.id).await.expect("state").state,
        None
    );
    assert!(
        store
            .claim_pushbacks(at(10), at(70_000), 10)
            .await
            .expect("claim")
            .is_empty(),
        "nothing is pushed before the review ends"
    );
    for t in claim(&store, &runner, 2, at(100)).await {
        store
            .submit_result(
                &tref(&t, &runner),
                result(TaskOutcome::Succeeded, None, false, at(200)),
            )
            .await
            .expect("result");
    }
    let jobs = store
        .claim_pushbacks(at(300), at(60_300), 10)
        .await
        .expect("claim");
    assert_eq!(
        jobs.iter()
            .map(|j| (j.review.id.clone(), j.attempt))
            .collect::<Vec<_>>(),
        [(posted.id.clone(), 1)]
    );
    assert!(
        store
            .claim_pushbacks(at(400), at(60_400), 10)
            .await
            .expect("claim")
            .is_empty(),
        "leased"
    );
    store
        .finish_pushback(
            &posted.id,
            "pending",
            Some("GitLab 503"),
            Some(at(5_000)),
            at(500),
        )
        .await
        .expect("retry");
    assert!(
        store
            .claim_pushbacks(at(1_000), at(61_000), 10)
            .await
            .expect("claim")
            .is_empty(),
        "not before its retry time"
    );
    let jobs = store
        .claim_pushbacks(at(5_000), at(65_000), 10)
        .await
        .expect("claim");
    assert_eq!(jobs.first().map(|j| j.attempt), Some(2));
    store
        .finish_pushback(&posted.id, "sent", None, None, at(5_100))
        .await
        .expect("sent");
    let state = store.push_state(&posted.id).await.expect("state");
    assert_eq!(
        (state.state.as_deref(), state.attempts, state.error),
        (Some("sent"), 2, None)
    );
    assert!(
        store
            .claim_pushbacks(at(999_999), at(1_999_999), 10)
            .await
            .expect("claim")
            .is_empty()
    );

    assert_eq!(
        store.change_thread(&project, 1).await.expect("thread"),
        ChangeThread::default()
    );
    let thread = ChangeThread {
        summary_comment_id: Some("note-9".into()),
        posted_fingerprints: vec!["f1".into(), "f2".into()],
    };
    store
        .save_change_thread(&project, 1, &thread, at(6_000))
        .await
        .expect("save");
    let again = ChangeThread {
        summary_comment_id: Some("note-9".into()),
        posted_fingerprints: vec!["f1".into(), "f2".into(), "f3".into()],
    };
    store
        .save_change_thread(&project, 1, &again, at(7_000))
        .await
        .expect("update");
    assert_eq!(
        store.change_thread(&project, 1).await.expect("thread"),
        again
    );
    assert_eq!(
        store.change_thread(&project, 2).await.expect("thread"),
        ChangeThread::default()
    );
}

fn new_user(email: &str, role: Role, now: Timestamp) -> NewUser {
    NewUser {
        id: UserId::generate(),
        email: Email::parse(email).expect("email"),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        role,
        permissions: vec![Permission::ReviewCreate],
        now,
    }
}

async fn session(store: &DynStore, owner: &User, now: Timestamp, expires_at: Timestamp) -> Session {
    store
        .create_session(NewSession {
            digest: SessionSecret::generate().digest(),
            user_id: owner.id.clone(),
            now,
            expires_at,
        })
        .await
        .expect("create session")
}

async fn live(store: &DynStore, s: &Session, now: Timestamp) -> Option<(Session, User)> {
    store
        .session_user(&s.digest, now)
        .await
        .expect("session lookup")
}

/// The first admin is created once: ordinary users do not count as an
/// admin, a taken email is a conflict, two setups racing create exactly
/// one admin, and every later attempt gets `None`.
pub async fn first_admin_is_created_once(store: DynStore) {
    let bob = user(&store, "bob@example.com").await;
    let taken = store
        .create_first_admin(new_user("bob@example.com", Role::Admin, at(1)))
        .await;
    assert!(matches!(taken, Err(StoreError::Conflict(_))), "{taken:?}");
    assert_eq!(store.count_admins().await.expect("count"), 0);

    let (a, b) = tokio::join!(
        store.create_first_admin(new_user("a@example.com", Role::Admin, at(2))),
        store.create_first_admin(new_user("b@example.com", Role::Admin, at(2))),
    );
    let created: Vec<User> = [a.expect("first admin a"), b.expect("first admin b")]
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(created.len(), 1, "exactly one racing setup wins");
    let admin = &created[0];
    assert_eq!((admin.role, admin.disabled), (Role::Admin, false));
    assert_eq!(
        store.user_by_id(&admin.id).await.expect("by id").as_ref(),
        Some(admin)
    );
    assert_eq!(store.count_admins().await.expect("count"), 1);

    let again = store
        .create_first_admin(new_user("late@example.com", Role::Admin, at(3)))
        .await
        .expect("second setup");
    assert!(again.is_none(), "{again:?}");
    let emails: Vec<_> = store
        .list_users()
        .await
        .expect("list")
        .into_iter()
        .map(|u| u.email)
        .collect();
    assert_eq!(emails, [bob.email, admin.email.clone()], "oldest first");
}

/// An admin created the ordinary way also closes first-run setup.
pub async fn first_admin_defers_to_an_existing_admin(store: DynStore) {
    store
        .create_user(new_user("root@example.com", Role::Admin, at(0)))
        .await
        .expect("admin");
    let late = store
        .create_first_admin(new_user("setup@example.com", Role::Admin, at(1)))
        .await
        .expect("setup");
    assert!(late.is_none(), "{late:?}");
    assert_eq!(store.list_users().await.expect("list").len(), 1);
}

/// User updates: unknown users are not found; demoting or disabling the
/// last enabled admin is refused and changes nothing; disabling a user or
/// changing their password ends their sessions (and only theirs), other
/// changes keep them.
pub async fn user_updates_keep_an_enabled_admin_and_end_sessions(store: DynStore) {
    let root = store
        .create_first_admin(new_user("root@example.com", Role::Admin, at(0)))
        .await
        .expect("first admin")
        .expect("created");
    let bob = store
        .create_user(new_user("bob@example.com", Role::User, at(1)))
        .await
        .expect("bob");
    let carol = store
        .create_user(new_user("carol@example.com", Role::User, at(2)))
        .await
        .expect("carol");
    let change = |id: &UserId| UserUpdate {
        id: id.clone(),
        role: None,
        permissions: None,
        disabled: None,
        password_hash: None,
    };

    let missing = store.update_user(change(&UserId::generate())).await;
    assert!(
        matches!(missing, Err(StoreError::NotFound { .. })),
        "{missing:?}"
    );
    for refused in [
        UserUpdate {
            role: Some(Role::User),
            permissions: Some(vec![Permission::ConfigCreate]),
            ..change(&root.id)
        },
        UserUpdate {
            disabled: Some(true),
            password_hash: Some("new".into()),
            ..change(&root.id)
        },
    ] {
        let outcome = store.update_user(refused).await;
        assert!(
            matches!(&outcome, Err(StoreError::Conflict(m)) if m.contains("no enabled admin")),
            "{outcome:?}"
        );
        assert_eq!(
            store.user_by_id(&root.id).await.expect("by id").as_ref(),
            Some(&root),
            "a refused change changes nothing"
        );
    }

    let promoted = store
        .update_user(UserUpdate {
            role: Some(Role::Admin),
            ..change(&bob.id)
        })
        .await
        .expect("promote bob");
    assert_eq!(
        (promoted.role, promoted.permissions.clone()),
        (Role::Admin, bob.permissions.clone()),
        "fields left None keep their value"
    );
    let demoted = store
        .update_user(UserUpdate {
            role: Some(Role::User),
            ..change(&root.id)
        })
        .await
        .expect("another enabled admin is left");
    assert_eq!(demoted.role, Role::User);
    let last = store
        .update_user(UserUpdate {
            disabled: Some(true),
            ..change(&bob.id)
        })
        .await;
    assert!(matches!(last, Err(StoreError::Conflict(_))), "{last:?}");

    let far = at(EXPIRY);
    let bob_session = session(&store, &bob, at(10), far).await;
    let carol_session = session(&store, &carol, at(10), far).await;
    let regranted = store
        .update_user(UserUpdate {
            permissions: Some(vec![Permission::ProjectCreate, Permission::ReviewCreate]),
            ..change(&carol.id)
        })
        .await
        .expect("permissions");
    assert_eq!(
        regranted.permissions,
        [Permission::ProjectCreate, Permission::ReviewCreate]
    );
    assert!(
        live(&store, &carol_session, at(11)).await.is_some(),
        "a permission change keeps sessions"
    );

    let rehashed = store
        .update_user(UserUpdate {
            password_hash: Some("$argon2id$new".into()),
            ..change(&bob.id)
        })
        .await
        .expect("password");
    assert_eq!(rehashed.password_hash, "$argon2id$new");
    assert!(
        live(&store, &bob_session, at(12)).await.is_none(),
        "a password change ends the user's sessions"
    );
    assert!(live(&store, &carol_session, at(12)).await.is_some());

    let disabled = store
        .update_user(UserUpdate {
            disabled: Some(true),
            ..change(&carol.id)
        })
        .await
        .expect("disable carol");
    assert!(disabled.disabled);
    store
        .update_user(UserUpdate {
            disabled: Some(false),
            ..change(&carol.id)
        })
        .await
        .expect("enable carol");
    assert!(
        live(&store, &carol_session, at(13)).await.is_none(),
        "disabling deleted the session, re-enabling does not revive it"
    );
}

/// Sessions: found by digest until they expire, moved forward by
/// `extend_session`, never for a disabled user; logout and the expiry
/// sweep delete them.
pub async fn sessions_expire_slide_and_exclude_disabled_users(store: DynStore) {
    let alice = user(&store, "alice@example.com").await;
    let s1 = session(&store, &alice, at(0), at(1_000)).await;
    assert_eq!(
        (s1.created_at, s1.last_seen_at, s1.expires_at),
        (at(0), at(0), at(1_000))
    );
    let (found, owner) = live(&store, &s1, at(999)).await.expect("live session");
    assert_eq!((found, owner), (s1.clone(), alice.clone()));
    assert!(
        live(&store, &s1, at(1_000)).await.is_none(),
        "a session is valid until its expiry"
    );
    assert!(
        store
            .session_user(&SessionSecret::generate().digest(), at(0))
            .await
            .expect("lookup")
            .is_none()
    );

    store
        .extend_session(&s1.digest, at(500), at(5_000))
        .await
        .expect("extend");
    let (slid, _) = live(&store, &s1, at(1_000)).await.expect("extended");
    assert_eq!(
        (slid.created_at, slid.last_seen_at, slid.expires_at),
        (at(0), at(500), at(5_000))
    );

    let mallory = user(&store, "mallory@example.com").await;
    store
        .update_user(UserUpdate {
            id: mallory.id.clone(),
            role: None,
            permissions: None,
            disabled: Some(true),
            password_hash: None,
        })
        .await
        .expect("disable");
    let stale = session(&store, &mallory, at(0), at(EXPIRY)).await;
    assert!(
        live(&store, &stale, at(1)).await.is_none(),
        "a disabled user's session does not authenticate"
    );

    store.delete_session(&s1.digest).await.expect("logout");
    assert!(live(&store, &s1, at(1)).await.is_none());
    store
        .delete_session(&SessionSecret::generate().digest())
        .await
        .expect("unknown digests are not an error");

    let early = session(&store, &alice, at(0), at(100)).await;
    let edge = session(&store, &alice, at(0), at(200)).await;
    let later = session(&store, &alice, at(0), at(10_000)).await;
    // `stale` (mallory's, expiring at EXPIRY) is not yet expired either.
    assert_eq!(
        store.delete_expired_sessions(at(200)).await.expect("sweep"),
        2
    );
    assert_eq!(
        store.delete_expired_sessions(at(200)).await.expect("sweep"),
        0
    );
    store
        .extend_session(&early.digest, at(150), at(9_000))
        .await
        .expect("extending a deleted session is not an error");
    assert!(live(&store, &early, at(201)).await.is_none());
    assert!(live(&store, &edge, at(199)).await.is_none());
    assert!(live(&store, &later, at(201)).await.is_some());
}

/// `list_tasks` returns the tasks in the given states, oldest first, at
/// most `limit`; no states means no tasks.
pub async fn task_lists_filter_by_state_oldest_first(store: DynStore) {
    let alice = user(&store, "alice@example.com").await;
    let r = runner(&store, &alice, "r1", "").await;
    let (_, t1) = enqueue(&store, &alice, "", at(1)).await;
    let (_, t2) = enqueue(&store, &alice, "", at(2)).await;
    let (_, t3) = enqueue(&store, &alice, "", at(3)).await;
    let (_, t4) = enqueue(&store, &alice, "", at(4)).await;
    let claimed = claim(&store, &r, 1, at(5)).await;
    assert_eq!(claimed[0].id, t1.id);
    store.cancel_task(&t2.id, at(6)).await.expect("cancel");
    let ids = |tasks: Vec<Task>| tasks.into_iter().map(|t| t.id).collect::<Vec<_>>();

    let pending = store
        .list_tasks(&[TaskState::Pending], 10)
        .await
        .expect("list");
    assert_eq!(
        pending,
        [task(&store, &t3.id).await, task(&store, &t4.id).await]
    );
    assert_eq!(
        ids(store
            .list_tasks(&[TaskState::Pending, TaskState::PickedUp], 10)
            .await
            .expect("list")),
        [t1.id.clone(), t3.id.clone(), t4.id.clone()]
    );
    assert_eq!(
        ids(store
            .list_tasks(&[TaskState::PickedUp, TaskState::Pending], 2)
            .await
            .expect("list")),
        [t1.id.clone(), t3.id.clone()],
        "limited, oldest first whatever the order of states"
    );
    assert_eq!(
        ids(store
            .list_tasks(&[TaskState::Cancelled, TaskState::Completed], 10)
            .await
            .expect("list")),
        vec![t2.id.clone()]
    );
    assert!(store.list_tasks(&[], 10).await.expect("list").is_empty());
    assert!(
        store
            .list_tasks(&[TaskState::Failed], 10)
            .await
            .expect("list")
            .is_empty()
    );
}

/// `task_timings`: tasks created since the cut-off, oldest first, limited;
/// `started_at` is the first claim even after a re-queue, `finished_at`
/// the terminal time; unclaimed tasks have no start.
pub async fn task_timings_start_at_the_first_claim(store: DynStore) {
    let alice = user(&store, "alice@example.com").await;
    let r = runner(&store, &alice, "r1", "").await;
    let (_, old) = enqueue(&store, &alice, "", at(0)).await;
    store.cancel_task(&old.id, at(1)).await.expect("cancel old");
    let (_, t1) = enqueue(&store, &alice, "", at(10)).await;
    let (_, t2) = enqueue(&store, &alice, "", at(11)).await;
    let (_, t3) = enqueue(&store, &alice, "", at(12)).await;

    let first = claim(&store, &r, 1, at(20)).await.remove(0);
    assert_eq!(first.id, t1.id);
    let reaped = store
        .reap_expired_leases(at(21 + LEASE), at(21 + LEASE + EXPIRY))
        .await
        .expect("reap");
    assert_eq!(reaped.requeued, vec![t1.id.clone()]);
    let second = claim(&store, &r, 1, at(22 + LEASE)).await.remove(0);
    assert_eq!(
        (second.id.clone(), second.attempt),
        (t1.id.clone(), Attempt(2))
    );
    store
        .submit_result(
            &tref(&second, &r),
            result(TaskOutcome::Succeeded, None, false, at(23 + LEASE)),
        )
        .await
        .expect("result");
    store.cancel_task(&t3.id, at(30)).await.expect("cancel t3");

    let timings = store.task_timings(at(5), 10).await.expect("timings");
    assert_eq!(
        timings,
        [
            TaskTiming {
                task_id: t3.id.clone(),
                state: TaskState::Cancelled,
                created_at: at(12),
                started_at: None,
                finished_at: Some(at(30)),
            },
            TaskTiming {
                task_id: t2.id.clone(),
                state: TaskState::Pending,
                created_at: at(11),
                started_at: None,
                finished_at: None,
            },
            TaskTiming {
                task_id: t1.id.clone(),
                state: TaskState::Completed,
                created_at: at(10),
                started_at: Some(at(20)),
                finished_at: Some(at(23 + LEASE)),
            },
        ]
    );
    let first_two = store.task_timings(at(10), 2).await.expect("timings");
    assert_eq!(
        first_two
            .iter()
            .map(|t| t.task_id.clone())
            .collect::<Vec<_>>(),
        [t3.id.clone(), t2.id]
    );
    assert_eq!(
        store
            .task_timings(at(0), 10)
            .await
            .expect("timings")
            .last()
            .map(|t| t.task_id.clone()),
        Some(old.id),
        "created exactly at the cut-off counts"
    );
}

fn new_review(owner: &User, change: Option<ReviewChange>, now: Timestamp) -> NewReview {
    NewReview {
        id: ReviewId::generate(),
        task_id: TaskId::generate(),
        repo_url: RepoUrl::parse("https://git.example.com/g/r.git").expect("url"),
        base_sha: sha('a'),
        head_sha: sha('b'),
        branch: None,
        title: None,
        created_by: owner.id.clone(),
        required_tags: TagSet::default(),
        max_attempts: 3,
        expires_at: now.plus_millis(EXPIRY),
        change,
        spec: serde_json::json!({}),
        now,
    }
}

/// All reviews, whatever their status.
async fn review_count(store: &DynStore) -> u64 {
    store
        .list_reviews(&ReviewFilter::default())
        .await
        .expect("list")
        .1
}

/// `get_tasks` and `get_reviews` return the records in the order of the ids
/// asked for, skip unknown ids, return a repeated id's record once, and
/// return nothing for no ids.
pub async fn tasks_and_reviews_by_ids_keep_the_order_asked(store: DynStore) {
    let alice = user(&store, "alice@example.com").await;
    let (r1, t1) = enqueue(&store, &alice, "", at(1)).await;
    let (r2, t2) = enqueue(&store, &alice, "", at(2)).await;
    let (r3, t3) = enqueue(&store, &alice, "", at(3)).await;
    store.cancel_task(&t2.id, at(4)).await.expect("cancel");

    let tasks = store
        .get_tasks(&[
            t3.id.clone(),
            TaskId::generate(),
            t1.id.clone(),
            t2.id.clone(),
            t1.id.clone(),
        ])
        .await
        .expect("get tasks");
    assert_eq!(
        tasks,
        [
            task(&store, &t3.id).await,
            task(&store, &t1.id).await,
            task(&store, &t2.id).await,
        ]
    );
    assert!(store.get_tasks(&[]).await.expect("no ids").is_empty());
    assert!(
        store
            .get_tasks(&[TaskId::generate()])
            .await
            .expect("unknown id")
            .is_empty()
    );

    let review = |id: ReviewId| {
        let store = store.clone();
        async move {
            store
                .get_review(&id)
                .await
                .expect("get review")
                .expect("review exists")
        }
    };
    let reviews = store
        .get_reviews(&[
            r2.id.clone(),
            r3.id.clone(),
            ReviewId::generate(),
            r2.id.clone(),
            r1.id.clone(),
        ])
        .await
        .expect("get reviews");
    assert_eq!(
        reviews,
        [
            review(r2.id.clone()).await,
            review(r3.id.clone()).await,
            review(r1.id.clone()).await,
        ]
    );
    assert_eq!(reviews[0].status, ReviewStatus::Cancelled);
    assert!(store.get_reviews(&[]).await.expect("no ids").is_empty());
    assert!(
        store
            .get_reviews(&[ReviewId::generate()])
            .await
            .expect("unknown id")
            .is_empty()
    );
}

/// `review_status_counts` counts the reviews a filter's project, change
/// and creation window select, per status, ignoring its status and paging;
/// statuses with no review are left out, and the counts add up to the
/// list's total.
pub async fn review_status_counts_follow_project_and_date_filters(store: DynStore) {
    let owner = user(&store, "owner@example.com").await;
    let runner = runner(&store, &owner, "r1", "").await;
    let (project_a, project_b) = (ProjectId::generate(), ProjectId::generate());
    let change = |project: &ProjectId, number: u64| {
        Some(ReviewChange {
            project_id: project.clone(),
            number,
            send_to_platform: false,
        })
    };
    // a1 (A!1) completes, b1 (B!1) fails, a2 (A!2) is superseded by a3
    // (A!2), a plain review stays pending.
    store
        .enqueue_review(new_review(&owner, change(&project_a, 1), at(1_000)))
        .await
        .expect("a1");
    let done = claim(&store, &runner, 1, at(1_100)).await.remove(0);
    store
        .submit_result(
            &tref(&done, &runner),
            result(TaskOutcome::Succeeded, None, false, at(1_200)),
        )
        .await
        .expect("a1 succeeds");
    store
        .enqueue_review(new_review(&owner, change(&project_b, 1), at(2_000)))
        .await
        .expect("b1");
    let failing = claim(&store, &runner, 1, at(2_100)).await.remove(0);
    store
        .submit_result(
            &tref(&failing, &runner),
            result(TaskOutcome::Failed, Some("boom"), false, at(2_200)),
        )
        .await
        .expect("b1 fails");
    store
        .enqueue_review(new_review(&owner, change(&project_a, 2), at(3_000)))
        .await
        .expect("a2");
    store
        .enqueue_review(new_review(&owner, change(&project_a, 2), at(4_000)))
        .await
        .expect("a3");
    store
        .enqueue_review(new_review(&owner, None, at(5_000)))
        .await
        .expect("plain");

    use ReviewStatus::{Cancelled, Completed, Failed, Pending};
    let check = |filter: ReviewFilter, expected: Vec<(ReviewStatus, u64)>| {
        let store = store.clone();
        async move {
            let mut counts = store
                .review_status_counts(&filter)
                .await
                .expect("status counts");
            counts.sort_by_key(|(s, _)| s.as_str());
            let mut expected = expected;
            expected.sort_by_key(|(s, _)| s.as_str());
            assert_eq!(counts, expected, "{filter:?}");
            let (_, total) = store
                .list_reviews(&ReviewFilter {
                    status: None,
                    ..filter.clone()
                })
                .await
                .expect("list");
            assert_eq!(
                counts.iter().map(|(_, n)| n).sum::<u64>(),
                total,
                "{filter:?}"
            );
        }
    };
    check(
        ReviewFilter::default(),
        vec![(Pending, 2), (Completed, 1), (Failed, 1), (Cancelled, 1)],
    )
    .await;
    check(
        ReviewFilter {
            project_id: Some(project_a.clone()),
            ..ReviewFilter::default()
        },
        vec![(Completed, 1), (Cancelled, 1), (Pending, 1)],
    )
    .await;
    check(
        ReviewFilter {
            project_id: Some(project_a.clone()),
            change_number: Some(2),
            ..ReviewFilter::default()
        },
        vec![(Cancelled, 1), (Pending, 1)],
    )
    .await;
    check(
        ReviewFilter {
            start: Some(at(2_000)),
            end: Some(at(5_000)),
            ..ReviewFilter::default()
        },
        vec![(Failed, 1), (Cancelled, 1), (Pending, 1)],
    )
    .await;
    check(
        ReviewFilter {
            project_id: Some(project_a.clone()),
            start: Some(at(3_000)),
            ..ReviewFilter::default()
        },
        vec![(Cancelled, 1), (Pending, 1)],
    )
    .await;
    check(
        ReviewFilter {
            status: Some(Completed),
            limit: 1,
            offset: 3,
            ..ReviewFilter::default()
        },
        vec![(Pending, 2), (Completed, 1), (Failed, 1), (Cancelled, 1)],
    )
    .await;
    check(
        ReviewFilter {
            project_id: Some(project_b.clone()),
            end: Some(at(2_000)),
            ..ReviewFilter::default()
        },
        vec![],
    )
    .await;
}

/// `enqueue_retry` links the retried review to a new pending review and
/// task; retrying the same review again, even concurrently, is a conflict
/// that queues nothing; an unknown review is not found; a change's retry
/// is numbered and supersedes like any review of the change.
pub async fn retries_are_queued_once(store: DynStore) {
    let alice = user(&store, "alice@example.com").await;
    let (first, t) = enqueue(&store, &alice, "", at(0)).await;
    store.cancel_task(&t.id, at(1)).await.expect("cancel");
    assert_eq!(first.retried_as, None);

    let (retry, retry_task) = store
        .enqueue_retry(&first.id, new_review(&alice, None, at(10)))
        .await
        .expect("retry");
    assert_eq!(
        (retry.status, retry.retried_as.clone()),
        (ReviewStatus::Pending, None)
    );
    assert_eq!(
        (retry_task.state, retry_task.review_id.clone()),
        (TaskState::Pending, retry.id.clone())
    );
    assert_eq!(task(&store, &retry_task.id).await, retry_task);
    assert_eq!(
        store.get_review(&retry.id).await.expect("get"),
        Some(retry.clone())
    );
    let first = store
        .get_review(&first.id)
        .await
        .expect("get")
        .expect("first");
    assert_eq!(first.retried_as, Some(retry.id.clone()));
    assert_eq!(first.status, ReviewStatus::Cancelled);

    let before = review_count(&store).await;
    let again = new_review(&alice, None, at(20));
    let (again_review, again_task) = (again.id.clone(), again.task_id.clone());
    match store.enqueue_retry(&first.id, again).await {
        Err(StoreError::Conflict(m)) => assert!(m.contains(retry.id.as_str()), "{m}"),
        other => panic!("a second retry must conflict: {other:?}"),
    }
    assert_eq!(review_count(&store).await, before, "nothing new enqueued");
    assert_eq!(store.get_review(&again_review).await.expect("get"), None);
    assert_eq!(store.get_task(&again_task).await.expect("get"), None);
    assert_eq!(
        store
            .get_review(&first.id)
            .await
            .expect("get")
            .and_then(|r| r.retried_as),
        Some(retry.id.clone()),
        "the first retry's link stays"
    );

    let unknown = store
        .enqueue_retry(&ReviewId::generate(), new_review(&alice, None, at(30)))
        .await;
    assert!(
        matches!(unknown, Err(StoreError::NotFound { .. })),
        "{unknown:?}"
    );
    assert_eq!(review_count(&store).await, before);

    // A double-click: many retries of one review at once queue one review.
    let (raced, raced_task) = enqueue(&store, &alice, "", at(40)).await;
    store
        .cancel_task(&raced_task.id, at(41))
        .await
        .expect("cancel");
    let attempts: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            let (of, retry) = (raced.id.clone(), new_review(&alice, None, at(50)));
            tokio::spawn(async move { store.enqueue_retry(&of, retry).await })
        })
        .collect();
    let mut queued = Vec::new();
    for a in attempts {
        match a.await.expect("join") {
            Ok((review, _)) => queued.push(review.id),
            Err(StoreError::Conflict(_)) => {}
            Err(e) => panic!("a racing retry may only conflict: {e:?}"),
        }
    }
    assert_eq!(queued.len(), 1, "exactly one racing retry wins");
    assert_eq!(review_count(&store).await, before + 2);
    assert_eq!(
        store
            .get_review(&raced.id)
            .await
            .expect("get")
            .and_then(|r| r.retried_as),
        queued.pop()
    );

    // A change's retry is its next round and supersedes what is unfinished.
    let change = ReviewChange {
        project_id: ProjectId::generate(),
        number: 3,
        send_to_platform: true,
    };
    let (round1, round1_task) = store
        .enqueue_review(new_review(&alice, Some(change.clone()), at(60)))
        .await
        .expect("round 1");
    let (round2, _) = store
        .enqueue_review(new_review(&alice, Some(change.clone()), at(70)))
        .await
        .expect("round 2");
    assert_eq!(
        task(&store, &round1_task.id).await.state,
        TaskState::Cancelled
    );
    let (round3, _) = store
        .enqueue_retry(&round1.id, new_review(&alice, Some(change.clone()), at(80)))
        .await
        .expect("retry round 1");
    assert_eq!(
        (round3.round_number, round3.change.clone()),
        (3, Some(change))
    );
    assert_eq!(
        store
            .get_review(&round2.id)
            .await
            .expect("get")
            .map(|r| r.status),
        Some(ReviewStatus::Cancelled),
        "superseded by the retry"
    );
    assert_eq!(
        store
            .get_review(&round1.id)
            .await
            .expect("get")
            .and_then(|r| r.retried_as),
        Some(round3.id)
    );
}

fn notification(
    event: NotificationEvent,
    channel: NotificationChannel,
    key: &str,
    review: Option<&ReviewId>,
    now: Timestamp,
) -> NewNotification {
    NewNotification {
        id: NotificationId::generate(),
        event,
        channel,
        review_id: review.cloned(),
        dedup_key: key.into(),
        payload: serde_json::json!({"key": key, "findings": [1, 2]}),
        now,
    }
}

/// A summary notification with its period in the key.
fn summary(channel: NotificationChannel, day: &str, now: Timestamp) -> NewNotification {
    notification(
        NotificationEvent::DailySummary,
        channel,
        &format!("daily_summary:{day}:{channel}"),
        None,
        now,
    )
}

async fn enqueue_one(store: &DynStore, n: NewNotification) -> Notification {
    let mut queued = store
        .enqueue_notifications(vec![n])
        .await
        .expect("enqueue notification");
    assert_eq!(queued.len(), 1, "queued");
    queued.remove(0)
}

async fn claim_notes(store: &DynStore, now: Timestamp, limit: u32) -> Vec<NotificationId> {
    store
        .claim_notifications(now, now.plus_millis(LEASE), limit)
        .await
        .expect("claim notifications")
        .into_iter()
        .map(|n| n.id)
        .collect()
}

async fn settle(
    store: &DynStore,
    id: &NotificationId,
    outcome: NotificationOutcome,
    now: Timestamp,
) -> Notification {
    store
        .finish_notification(id, outcome, now)
        .await
        .expect("finish notification")
}

async fn note(store: &DynStore, id: &NotificationId) -> Notification {
    store
        .get_notification(id)
        .await
        .expect("get notification")
        .expect("notification exists")
}

fn ids_of(ns: &[Notification]) -> Vec<NotificationId> {
    ns.iter().map(|n| n.id.clone()).collect()
}

/// A dedup key is queued once: a second notification with it (in the same
/// batch, a later batch, after the first was sent, or from many callers at
/// once) is skipped and not returned. A taken id is a conflict.
pub async fn notifications_are_queued_once_per_dedup_key(store: DynStore) {
    use NotificationChannel::{Email, Slack};
    let review = ReviewId::generate();
    let first = store
        .enqueue_notifications(vec![
            notification(
                NotificationEvent::ReviewCompleted,
                Slack,
                &format!("review_completed:{review}:slack"),
                Some(&review),
                at(0),
            ),
            summary(Slack, "2026-11-24", at(0)),
            summary(Slack, "2026-11-24", at(0)),
            summary(Email, "2026-11-24", at(0)),
        ])
        .await
        .expect("enqueue");
    assert_eq!(
        first
            .iter()
            .map(|n| n.dedup_key.as_str())
            .collect::<Vec<_>>(),
        [
            format!("review_completed:{review}:slack").as_str(),
            "daily_summary:2026-11-24:slack",
            "daily_summary:2026-11-24:email",
        ],
        "queued in the order given, the repeated key once"
    );
    let n = &first[0];
    assert_eq!(
        (n.event, n.channel, n.review_id.as_ref(), n.status),
        (
            NotificationEvent::ReviewCompleted,
            Slack,
            Some(&review),
            NotificationStatus::Pending
        )
    );
    assert_eq!(
        (n.attempts, n.next_attempt_at, n.lease_until, n.sent_at),
        (0, at(0), None, None)
    );
    assert_eq!(
        (n.created_at, n.updated_at, n.last_error.as_deref()),
        (at(0), at(0), None)
    );
    assert_eq!(
        n.payload,
        serde_json::json!({"key": format!("review_completed:{review}:slack"), "findings": [1, 2]})
    );
    assert_eq!(&note(&store, &n.id).await, n);
    assert_eq!(first[1].review_id, None);

    let again = store
        .enqueue_notifications(vec![
            summary(Slack, "2026-11-24", at(10)),
            summary(Slack, "2026-11-25", at(10)),
        ])
        .await
        .expect("enqueue again");
    assert_eq!(
        again
            .iter()
            .map(|n| n.dedup_key.as_str())
            .collect::<Vec<_>>(),
        ["daily_summary:2026-11-25:slack"],
        "only the new period is queued"
    );
    assert!(
        store
            .enqueue_notifications(vec![summary(Email, "2026-11-24", at(20))])
            .await
            .expect("enqueue duplicate")
            .is_empty()
    );
    assert!(
        store
            .enqueue_notifications(Vec::new())
            .await
            .expect("enqueue nothing")
            .is_empty()
    );
    settle(&store, &first[2].id, NotificationOutcome::Sent, at(30)).await;
    assert!(
        store
            .enqueue_notifications(vec![summary(Email, "2026-11-24", at(40))])
            .await
            .expect("enqueue after sent")
            .is_empty(),
        "a sent notification still holds its key"
    );
    let mut taken = summary(Email, "2026-11-26", at(50));
    taken.id = first[0].id.clone();
    assert!(matches!(
        store.enqueue_notifications(vec![taken]).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store
            .list_notifications(&NotificationFilter {
                limit: 100,
                ..Default::default()
            })
            .await
            .expect("list")
            .1,
        4
    );

    // Many schedulers at once (server replicas), each with the week's
    // summaries in its own order: every key is queued exactly once.
    let mut racers = Vec::new();
    for r in 0..8usize {
        let store = store.clone();
        racers.push(tokio::spawn(async move {
            let mut batch: Vec<_> = (0..5)
                .map(|d| summary(Slack, &format!("2026-12-0{}", d + 1), at(100)))
                .collect();
            batch.rotate_left(r % 5);
            store
                .enqueue_notifications(batch)
                .await
                .expect("racing enqueue")
        }));
    }
    let mut keys = Vec::new();
    for r in racers {
        keys.extend(r.await.expect("join").into_iter().map(|n| n.dedup_key));
    }
    keys.sort();
    assert_eq!(
        keys,
        (1..=5)
            .map(|d| format!("daily_summary:2026-12-0{d}:slack"))
            .collect::<Vec<_>>()
    );
}

/// A claim takes due notifications only (not before `next_attempt_at`),
/// oldest first by creation time, at most `limit`, leases them and counts
/// the try; leased ones are not claimed again while the lease lives.
pub async fn notification_claims_lease_count_order_and_wait_until_due(store: DynStore) {
    use NotificationChannel::Slack;
    let a = enqueue_one(&store, summary(Slack, "a", at(0))).await;
    let b = enqueue_one(&store, summary(Slack, "b", at(10))).await;
    let c = enqueue_one(&store, summary(Slack, "c", at(20))).await;
    assert!(claim_notes(&store, at(-1), 10).await.is_empty(), "not due");
    assert!(claim_notes(&store, at(5), 0).await.is_empty(), "limit 0");
    assert_eq!(
        claim_notes(&store, at(5), 10).await,
        vec![a.id.clone()],
        "b and c are not due yet"
    );
    let leased = note(&store, &a.id).await;
    assert_eq!(
        (leased.attempts, leased.lease_until, leased.status),
        (1, Some(at(5 + LEASE)), NotificationStatus::Pending)
    );
    assert_eq!(leased.updated_at, at(5));
    let claimed = store
        .claim_notifications(at(30), at(30 + LEASE), 1)
        .await
        .expect("claim");
    assert_eq!(
        ids_of(&claimed),
        vec![b.id.clone()],
        "oldest due first, limit 1"
    );
    assert_eq!(
        (claimed[0].attempts, claimed[0].lease_until),
        (1, Some(at(30 + LEASE))),
        "the claim returns the leased row"
    );
    assert_eq!(claim_notes(&store, at(30), 10).await, vec![c.id.clone()]);
    assert!(
        claim_notes(&store, at(40), 10).await.is_empty(),
        "every notification is leased"
    );

    // Creation time orders claims, not the id: `late` is generated first
    // but created after `early`.
    let late = summary(Slack, "late", at(200));
    let early = summary(Slack, "early", at(150));
    store
        .enqueue_notifications(vec![late.clone(), early.clone()])
        .await
        .expect("enqueue");
    assert_eq!(
        claim_notes(&store, at(300), 10).await,
        [early.id, late.id],
        "oldest first"
    );
}

/// Many claims racing over a few notifications never hand one out twice.
pub async fn concurrent_notification_claims_never_share_one(store: DynStore) {
    let mut queued = HashSet::new();
    for channel in [
        NotificationChannel::Email,
        NotificationChannel::Slack,
        NotificationChannel::Feishu,
    ] {
        queued.insert(
            enqueue_one(&store, summary(channel, "2026-11-24", at(0)))
                .await
                .id,
        );
    }
    let claims: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { claim_notes(&store, at(10), 1).await })
        })
        .collect();
    let mut seen = HashSet::new();
    for c in claims {
        let got = c.await.expect("join");
        assert!(got.len() <= 1, "limit 1");
        for id in got {
            assert!(seen.insert(id.clone()), "notification {id} claimed twice");
        }
    }
    for id in claim_notes(&store, at(10), 10).await {
        assert!(seen.insert(id.clone()), "notification {id} claimed twice");
    }
    assert_eq!(seen, queued);
    for id in &seen {
        assert_eq!(note(&store, id).await.attempts, 1, "{id} claimed once");
    }
}

/// A sender that dies leaves its lease to run out; from then on the
/// notification is claimable again, with its try counted again.
pub async fn expired_notification_leases_make_them_claimable_again(store: DynStore) {
    let n = enqueue_one(
        &store,
        summary(NotificationChannel::Webhook, "2026-11-24", at(0)),
    )
    .await;
    assert_eq!(claim_notes(&store, at(0), 10).await, vec![n.id.clone()]);
    assert!(
        claim_notes(&store, at(LEASE - 1), 10).await.is_empty(),
        "lease still lives"
    );
    let again = store
        .claim_notifications(at(LEASE), at(2 * LEASE), 10)
        .await
        .expect("claim after the lease ended");
    assert_eq!(ids_of(&again), vec![n.id.clone()]);
    assert_eq!(
        (again[0].attempts, again[0].lease_until),
        (2, Some(at(2 * LEASE)))
    );
    assert!(claim_notes(&store, at(LEASE + 1), 10).await.is_empty());
}

/// A retry stays pending with its error and is claimable again only from
/// its retry time; sent and failed are final: never claimed again, and a
/// later finish is refused without changing them.
pub async fn notification_outcomes_retry_fail_send_and_are_final(store: DynStore) {
    use NotificationChannel::{Dingtalk, Email, Slack};
    let a = enqueue_one(&store, summary(Slack, "2026-11-24", at(0))).await;
    let b = enqueue_one(&store, summary(Email, "2026-11-24", at(1))).await;
    let c = enqueue_one(&store, summary(Dingtalk, "2026-11-24", at(2))).await;
    assert_eq!(
        claim_notes(&store, at(10), 10).await,
        [a.id.clone(), b.id.clone(), c.id.clone()]
    );

    let retried = settle(
        &store,
        &a.id,
        NotificationOutcome::Retry {
            at: at(5_000),
            error: "slack answered 503".into(),
        },
        at(100),
    )
    .await;
    assert_eq!(
        (retried.status, retried.next_attempt_at, retried.lease_until),
        (NotificationStatus::Pending, at(5_000), None)
    );
    assert_eq!(
        (
            retried.last_error.as_deref(),
            retried.attempts,
            retried.updated_at,
            retried.sent_at
        ),
        (Some("slack answered 503"), 1, at(100), None)
    );
    assert_eq!(note(&store, &a.id).await, retried);
    assert!(
        claim_notes(&store, at(4_999), 10).await.is_empty(),
        "not before its retry time"
    );
    let second = store
        .claim_notifications(at(5_000), at(5_000 + LEASE), 10)
        .await
        .expect("claim the retry");
    assert_eq!(ids_of(&second), vec![a.id.clone()]);
    assert_eq!(
        (second[0].attempts, second[0].last_error.as_deref()),
        (2, Some("slack answered 503")),
        "the last error stays until the next outcome"
    );
    let sent = settle(&store, &a.id, NotificationOutcome::Sent, at(5_100)).await;
    assert_eq!(
        (sent.status, sent.sent_at, sent.last_error, sent.lease_until),
        (NotificationStatus::Sent, Some(at(5_100)), None, None)
    );
    assert_eq!((sent.attempts, sent.updated_at), (2, at(5_100)));

    let failed = settle(
        &store,
        &b.id,
        NotificationOutcome::Failed {
            error: "SMTP 550 mailbox unavailable".into(),
        },
        at(200),
    )
    .await;
    assert_eq!(
        (
            failed.status,
            failed.last_error.as_deref(),
            failed.lease_until,
            failed.sent_at
        ),
        (
            NotificationStatus::Failed,
            Some("SMTP 550 mailbox unavailable"),
            None,
            None
        )
    );

    // c's sender died: only c comes back once its lease ends.
    assert_eq!(
        claim_notes(&store, at(10 + LEASE), 10).await,
        vec![c.id.clone()],
        "sent and failed notifications are never claimed again"
    );
    settle(&store, &c.id, NotificationOutcome::Sent, at(20 + LEASE)).await;
    assert!(claim_notes(&store, at(10_000_000), 10).await.is_empty());

    for (id, outcome) in [
        (
            &a.id,
            NotificationOutcome::Failed {
                error: "late".into(),
            },
        ),
        (
            &b.id,
            NotificationOutcome::Retry {
                at: at(0),
                error: "late".into(),
            },
        ),
        (&b.id, NotificationOutcome::Sent),
    ] {
        let before = note(&store, id).await;
        assert!(
            matches!(
                store.finish_notification(id, outcome, at(999_999)).await,
                Err(StoreError::Conflict(_))
            ),
            "a final outcome is not overwritten"
        );
        assert_eq!(note(&store, id).await, before);
    }
}

/// An unknown id: `get` is `None`, `finish` is `NotFound`.
pub async fn missing_notifications_are_none_or_not_found(store: DynStore) {
    let ghost = NotificationId::generate();
    assert_eq!(store.get_notification(&ghost).await.expect("get"), None);
    for outcome in [
        NotificationOutcome::Sent,
        NotificationOutcome::Failed { error: "x".into() },
        NotificationOutcome::Retry {
            at: at(1),
            error: "x".into(),
        },
    ] {
        assert!(matches!(
            store.finish_notification(&ghost, outcome, at(0)).await,
            Err(StoreError::NotFound { .. })
        ));
    }
    assert_eq!(
        store
            .list_notifications(&NotificationFilter {
                limit: 10,
                ..Default::default()
            })
            .await
            .expect("list"),
        (Vec::new(), 0)
    );
}

/// The history lists newest first, with every documented filter (alone and
/// combined), paging, and the total of matches.
pub async fn notification_history_filters_pages_and_counts(store: DynStore) {
    use NotificationChannel::{Email, Slack, Webhook};
    use NotificationEvent::{DailySummary, ReviewCompleted, ReviewFailed, WeeklySummary};
    let r1 = ReviewId::generate();
    let r2 = ReviewId::generate();
    let n1 = enqueue_one(
        &store,
        notification(ReviewCompleted, Slack, "n1", Some(&r1), at(0)),
    )
    .await;
    let n2 = enqueue_one(
        &store,
        notification(ReviewCompleted, Email, "n2", Some(&r1), at(10)),
    )
    .await;
    let n3 = enqueue_one(
        &store,
        notification(ReviewFailed, Slack, "n3", Some(&r2), at(20)),
    )
    .await;
    let n4 = enqueue_one(
        &store,
        notification(DailySummary, Slack, "n4", None, at(30)),
    )
    .await;
    let n5 = enqueue_one(
        &store,
        notification(WeeklySummary, Webhook, "n5", None, at(40)),
    )
    .await;
    settle(&store, &n1.id, NotificationOutcome::Sent, at(100)).await;
    settle(
        &store,
        &n3.id,
        NotificationOutcome::Failed {
            error: "gone".into(),
        },
        at(100),
    )
    .await;
    settle(
        &store,
        &n2.id,
        NotificationOutcome::Retry {
            at: at(9_000),
            error: "timeout".into(),
        },
        at(100),
    )
    .await;

    let list = |f: NotificationFilter| {
        let store = store.clone();
        async move {
            let (page, total) = store.list_notifications(&f).await.expect("list");
            (ids_of(&page), total)
        }
    };
    let page = |limit, offset| NotificationFilter {
        limit,
        offset,
        ..Default::default()
    };
    let all = NotificationFilter {
        limit: 50,
        ..Default::default()
    };
    let ids = |ns: &[&Notification]| ns.iter().map(|n| n.id.clone()).collect::<Vec<_>>();

    assert_eq!(
        list(all.clone()).await,
        (ids(&[&n5, &n4, &n3, &n2, &n1]), 5),
        "newest first"
    );
    assert_eq!(
        list(NotificationFilter {
            channel: Some(Slack),
            ..all.clone()
        })
        .await,
        (ids(&[&n4, &n3, &n1]), 3)
    );
    for (status, expected) in [
        (NotificationStatus::Sent, ids(&[&n1])),
        (NotificationStatus::Failed, ids(&[&n3])),
        (NotificationStatus::Pending, ids(&[&n5, &n4, &n2])),
    ] {
        let total = expected.len() as u64;
        assert_eq!(
            list(NotificationFilter {
                status: Some(status),
                ..all.clone()
            })
            .await,
            (expected, total),
            "{status}"
        );
    }
    assert_eq!(
        list(NotificationFilter {
            event: Some(ReviewCompleted),
            ..all.clone()
        })
        .await,
        (ids(&[&n2, &n1]), 2)
    );
    assert_eq!(
        list(NotificationFilter {
            event: Some(NotificationEvent::RatingLow),
            ..all.clone()
        })
        .await,
        (Vec::new(), 0)
    );
    assert_eq!(
        list(NotificationFilter {
            review_id: Some(r1.clone()),
            ..all.clone()
        })
        .await,
        (ids(&[&n2, &n1]), 2)
    );
    assert_eq!(
        list(NotificationFilter {
            start: Some(at(10)),
            end: Some(at(30)),
            ..all.clone()
        })
        .await,
        (ids(&[&n3, &n2]), 2),
        "created at or after start, before end"
    );
    assert_eq!(
        list(NotificationFilter {
            start: Some(at(30)),
            ..all.clone()
        })
        .await,
        (ids(&[&n5, &n4]), 2)
    );
    assert_eq!(
        list(NotificationFilter {
            channel: Some(Slack),
            status: Some(NotificationStatus::Pending),
            ..all.clone()
        })
        .await,
        (ids(&[&n4]), 1)
    );
    assert_eq!(
        list(NotificationFilter {
            channel: Some(Slack),
            review_id: Some(r2.clone()),
            event: Some(ReviewFailed),
            status: Some(NotificationStatus::Failed),
            start: Some(at(0)),
            end: Some(at(1_000)),
            ..all.clone()
        })
        .await,
        (ids(&[&n3]), 1)
    );

    assert_eq!(list(page(2, 0)).await, (ids(&[&n5, &n4]), 5));
    assert_eq!(list(page(2, 2)).await, (ids(&[&n3, &n2]), 5));
    assert_eq!(list(page(2, 4)).await, (ids(&[&n1]), 5));
    assert_eq!(list(page(2, 10)).await, (Vec::new(), 5));
    assert_eq!(list(page(0, 0)).await, (Vec::new(), 5), "only the total");
    assert_eq!(
        list(NotificationFilter {
            channel: Some(Slack),
            limit: 1,
            offset: 1,
            ..Default::default()
        })
        .await,
        (ids(&[&n3]), 3)
    );

    // Rows created in the same millisecond keep a stable order (by id).
    let twin_a = notification(DailySummary, Email, "twin-a", None, at(50));
    let twin_b = notification(DailySummary, Email, "twin-b", None, at(50));
    store
        .enqueue_notifications(vec![twin_b.clone(), twin_a.clone()])
        .await
        .expect("enqueue twins");
    let mut twins = vec![twin_a.id, twin_b.id];
    twins.sort();
    twins.reverse();
    assert_eq!(list(page(2, 0)).await, (twins, 7));
}

/// Stats count the notifications per channel and status, over a creation
/// time window, in declaration order, omitting empty pairs.
pub async fn notification_stats_count_per_channel_and_status(store: DynStore) {
    use NotificationChannel::{Email, Push, Slack, Webhook};
    use NotificationStatus::{Failed, Pending, Sent};
    assert_eq!(
        store.notification_stats(None, None).await.expect("stats"),
        NotificationStats::default()
    );
    let mut made = Vec::new();
    for (i, (channel, outcome)) in [
        (Slack, Some(NotificationOutcome::Sent)),
        (Webhook, Some(NotificationOutcome::Sent)),
        (
            Slack,
            Some(NotificationOutcome::Failed { error: "x".into() }),
        ),
        (Email, None),
        (Slack, Some(NotificationOutcome::Sent)),
        (
            Email,
            Some(NotificationOutcome::Retry {
                at: at(10_000),
                error: "x".into(),
            }),
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let offset = i64::try_from(i).expect("small") * 100;
        let n = enqueue_one(
            &store,
            notification(
                NotificationEvent::ReviewCompleted,
                channel,
                &format!("k{i}"),
                None,
                at(offset),
            ),
        )
        .await;
        if let Some(outcome) = outcome {
            settle(&store, &n.id, outcome, at(offset + 1)).await;
        }
        made.push(n);
    }
    let stats = store.notification_stats(None, None).await.expect("stats");
    assert_eq!(
        stats.counts,
        vec![
            (Email, Pending, 2),
            (Slack, Sent, 2),
            (Slack, Failed, 1),
            (Webhook, Sent, 1)
        ]
    );
    assert_eq!(stats.total(), 6);
    assert_eq!(
        (
            stats.with_status(Sent),
            stats.with_status(Pending),
            stats.with_status(Failed)
        ),
        (3, 2, 1)
    );
    assert_eq!((stats.of_channel(Slack), stats.of_channel(Push)), (3, 0));
    assert_eq!(
        (stats.count(Slack, Failed), stats.count(Push, Sent)),
        (1, 0)
    );

    // Created at 100 through 399: the webhook, the failed slack, the
    // untried email.
    let window = store
        .notification_stats(Some(at(100)), Some(at(400)))
        .await
        .expect("stats in a window");
    assert_eq!(
        window.counts,
        vec![(Email, Pending, 1), (Slack, Failed, 1), (Webhook, Sent, 1)]
    );
    let since = store
        .notification_stats(Some(at(400)), None)
        .await
        .expect("stats since");
    assert_eq!(since.counts, vec![(Email, Pending, 1), (Slack, Sent, 1)]);
    let until = store
        .notification_stats(None, Some(at(100)))
        .await
        .expect("stats until");
    assert_eq!(until.counts, vec![(Slack, Sent, 1)]);
    assert_eq!(made.len(), 6);
}

fn push_sub(
    endpoint: &str,
    owner: Option<&User>,
    key: &str,
    now: Timestamp,
) -> NewPushSubscription {
    NewPushSubscription {
        id: PushSubscriptionId::generate(),
        user_id: owner.map(|u| u.id.clone()),
        endpoint: format!("https://push.example.com/send/{endpoint}"),
        p256dh: format!("p256dh-{key}"),
        auth: format!("sealed-auth-{key}"),
        user_agent: Some(format!("Browser/{key}")),
        now,
    }
}

async fn save_sub(store: &DynStore, new: NewPushSubscription) -> PushSubscription {
    store
        .save_push_subscription(new)
        .await
        .expect("save push subscription")
}

async fn subs_of(store: &DynStore, owner: Option<&User>) -> Vec<PushSubscriptionId> {
    store
        .list_push_subscriptions(owner.map(|u| &u.id))
        .await
        .expect("list push subscriptions")
        .into_iter()
        .map(|s| s.id)
        .collect()
}

/// A new endpoint is stored as given (every string kept verbatim, optional
/// fields may be absent) and read back by id; an unknown id is `None`.
pub async fn push_subscriptions_are_saved_and_read_back(store: DynStore) {
    let alice = user(&store, "alice@example.com").await;
    let new = push_sub("a1", Some(&alice), "k1", at(10));
    let saved = save_sub(&store, new.clone()).await;
    assert_eq!(
        saved,
        PushSubscription {
            id: new.id.clone(),
            user_id: Some(alice.id.clone()),
            endpoint: new.endpoint.clone(),
            p256dh: "p256dh-k1".into(),
            auth: "sealed-auth-k1".into(),
            user_agent: Some("Browser/k1".into()),
            created_at: at(10),
            updated_at: at(10),
        }
    );
    assert_eq!(
        store
            .get_push_subscription(&new.id)
            .await
            .expect("get push subscription"),
        Some(saved)
    );

    // No user, no user agent.
    let anonymous = NewPushSubscription {
        user_id: None,
        user_agent: None,
        ..push_sub("anon", None, "k2", at(20))
    };
    let stored = save_sub(&store, anonymous.clone()).await;
    assert_eq!((stored.user_id, stored.user_agent), (None, None));
    assert_eq!(
        store
            .get_push_subscription(&anonymous.id)
            .await
            .expect("get")
            .map(|s| s.endpoint),
        Some(anonymous.endpoint)
    );

    assert_eq!(
        store
            .get_push_subscription(&PushSubscriptionId::generate())
            .await
            .expect("get unknown"),
        None
    );
}

/// Saving an endpoint again keeps its id and creation time and replaces
/// its owner, keys, user agent and update time; the id offered with it is
/// ignored, even one another endpoint holds. Still one row per endpoint.
pub async fn push_subscriptions_upsert_by_endpoint_keeping_id_and_creation(store: DynStore) {
    let alice = user(&store, "alice@example.com").await;
    let bob = user(&store, "bob@example.com").await;
    let first = save_sub(&store, push_sub("shared", Some(&alice), "old", at(0))).await;

    let again = push_sub("shared", Some(&bob), "new", at(500));
    let resaved = save_sub(&store, again.clone()).await;
    let expected = PushSubscription {
        id: first.id.clone(),
        user_id: Some(bob.id.clone()),
        endpoint: first.endpoint.clone(),
        p256dh: "p256dh-new".into(),
        auth: "sealed-auth-new".into(),
        user_agent: Some("Browser/new".into()),
        created_at: at(0),
        updated_at: at(500),
    };
    assert_eq!(resaved, expected);
    assert_eq!(
        store.get_push_subscription(&first.id).await.expect("get"),
        Some(expected)
    );
    assert_eq!(
        store.get_push_subscription(&again.id).await.expect("get"),
        None,
        "the id offered with a known endpoint is not stored"
    );
    assert_eq!(subs_of(&store, None).await, vec![first.id.clone()]);
    assert_eq!(subs_of(&store, Some(&alice)).await, Vec::new());
    assert_eq!(subs_of(&store, Some(&bob)).await, vec![first.id.clone()]);

    // Saved again signed out: no owner, no user agent any more.
    let signed_out = save_sub(
        &store,
        NewPushSubscription {
            user_id: None,
            user_agent: None,
            ..push_sub("shared", None, "newer", at(600))
        },
    )
    .await;
    assert_eq!(
        (
            &signed_out.id,
            signed_out.user_id.as_ref(),
            signed_out.user_agent.as_deref(),
            signed_out.p256dh.as_str(),
            signed_out.created_at,
            signed_out.updated_at
        ),
        (&first.id, None, None, "p256dh-newer", at(0), at(600))
    );
    assert_eq!(subs_of(&store, Some(&bob)).await, Vec::new());

    // A known endpoint offered with the id of another endpoint keeps its
    // own id and leaves the other one alone.
    let other = save_sub(&store, push_sub("other", Some(&alice), "o", at(700))).await;
    let crossed = save_sub(
        &store,
        NewPushSubscription {
            id: other.id.clone(),
            ..push_sub("shared", Some(&alice), "crossed", at(800))
        },
    )
    .await;
    assert_eq!(
        (&crossed.id, crossed.updated_at),
        (&first.id, at(800)),
        "an existing endpoint keeps its id"
    );
    assert_eq!(
        store.get_push_subscription(&other.id).await.expect("get"),
        Some(other.clone())
    );
    assert_eq!(subs_of(&store, None).await, vec![first.id, other.id]);
}

/// A user's subscriptions, or all of them (those of no user included),
/// oldest first by creation time, then id; a resave does not move one.
pub async fn push_subscriptions_list_per_user_or_all_oldest_first(store: DynStore) {
    let alice = user(&store, "alice@example.com").await;
    let bob = user(&store, "bob@example.com").await;
    let carol = user(&store, "carol@example.com").await;
    assert_eq!(subs_of(&store, None).await, Vec::new());

    let a_late = save_sub(&store, push_sub("a-late", Some(&alice), "1", at(30))).await;
    let b = save_sub(&store, push_sub("b", Some(&bob), "2", at(20))).await;
    let a_early = save_sub(&store, push_sub("a-early", Some(&alice), "3", at(10))).await;
    let anon = save_sub(&store, push_sub("anon", None, "4", at(5))).await;
    // Two created in the same millisecond: by id.
    let twin_x = push_sub("twin-x", Some(&alice), "5", at(40));
    let twin_y = push_sub("twin-y", Some(&alice), "6", at(40));
    save_sub(&store, twin_y.clone()).await;
    save_sub(&store, twin_x.clone()).await;
    let mut twins = [twin_x.id, twin_y.id];
    twins.sort();

    let mut alices = vec![a_early.id.clone(), a_late.id.clone()];
    alices.extend(twins.iter().cloned());
    assert_eq!(subs_of(&store, Some(&alice)).await, alices);
    assert_eq!(subs_of(&store, Some(&bob)).await, vec![b.id.clone()]);
    assert_eq!(subs_of(&store, Some(&carol)).await, Vec::new());
    let mut all = vec![
        anon.id.clone(),
        a_early.id.clone(),
        b.id.clone(),
        a_late.id.clone(),
    ];
    all.extend(twins.iter().cloned());
    assert_eq!(subs_of(&store, None).await, all);

    // Bob's browser resaved by alice later: it moves to her list, at its
    // original place (creation time is kept).
    save_sub(&store, push_sub("b", Some(&alice), "7", at(1_000))).await;
    assert_eq!(subs_of(&store, Some(&bob)).await, Vec::new());
    let mut alices = vec![a_early.id.clone(), b.id.clone(), a_late.id.clone()];
    alices.extend(twins.iter().cloned());
    assert_eq!(subs_of(&store, Some(&alice)).await, alices);
    assert_eq!(subs_of(&store, None).await, all);
}

/// Deleting one reports whether it existed; deleting all counts them.
pub async fn push_subscription_deletes_report_what_they_deleted(store: DynStore) {
    let alice = user(&store, "alice@example.com").await;
    let one = save_sub(&store, push_sub("one", Some(&alice), "1", at(0))).await;
    let two = save_sub(&store, push_sub("two", None, "2", at(10))).await;
    let three = save_sub(&store, push_sub("three", Some(&alice), "3", at(20))).await;

    assert!(
        store
            .delete_push_subscription(&one.id)
            .await
            .expect("delete")
    );
    assert!(
        !store
            .delete_push_subscription(&one.id)
            .await
            .expect("delete again"),
        "a second delete finds nothing"
    );
    assert!(
        !store
            .delete_push_subscription(&PushSubscriptionId::generate())
            .await
            .expect("delete unknown")
    );
    assert_eq!(
        store.get_push_subscription(&one.id).await.expect("get"),
        None
    );
    assert_eq!(subs_of(&store, None).await, vec![two.id, three.id]);

    // A deleted endpoint subscribing again is a new subscription.
    let back = push_sub("one", Some(&alice), "4", at(30));
    let resubscribed = save_sub(&store, back.clone()).await;
    assert_eq!(
        (&resubscribed.id, resubscribed.created_at),
        (&back.id, at(30))
    );

    assert_eq!(
        store
            .delete_all_push_subscriptions()
            .await
            .expect("delete all"),
        3
    );
    assert_eq!(subs_of(&store, None).await, Vec::new());
    assert_eq!(
        store
            .delete_all_push_subscriptions()
            .await
            .expect("delete all again"),
        0
    );
}

/// A new endpoint offered with an id another endpoint holds is a conflict,
/// and writes nothing.
pub async fn push_subscription_ids_taken_by_another_endpoint_conflict(store: DynStore) {
    let alice = user(&store, "alice@example.com").await;
    let first = save_sub(&store, push_sub("first", Some(&alice), "1", at(0))).await;
    let clash = NewPushSubscription {
        id: first.id.clone(),
        ..push_sub("second", None, "2", at(10))
    };
    let refused = store.save_push_subscription(clash).await;
    assert!(
        matches!(refused, Err(StoreError::Conflict(_))),
        "{refused:?}"
    );
    assert_eq!(
        store.get_push_subscription(&first.id).await.expect("get"),
        Some(first.clone())
    );
    assert_eq!(subs_of(&store, None).await, vec![first.id]);
}

// ----- several replicas ---------------------------------------------------

const PERIOD: i64 = 60_000;

/// A periodic job starts on the first call, not again within its period
/// (the same instant included), again once the period passed (measured
/// from the last start), and each job keeps its own schedule.
pub async fn periodic_jobs_start_once_per_period(store: DynStore) {
    let start = |job: &'static str, now: Timestamp| {
        let store = store.clone();
        async move {
            store
                .try_start_periodic(job, now, PERIOD)
                .await
                .expect("try_start_periodic")
        }
    };
    let runs = |job: &'static str| {
        let store = store.clone();
        async move { store.periodic_runs(job).await.expect("periodic_runs") }
    };
    assert_eq!(runs("sweep").await, 0, "never started");
    assert!(start("sweep", at(0)).await, "the first call starts the job");
    assert_eq!(runs("sweep").await, 1);
    assert!(
        !start("sweep", at(0)).await,
        "a second call at the same now"
    );
    assert!(
        !start("sweep", at(PERIOD - 1)).await,
        "before the period ends"
    );
    assert!(!start("sweep", at(-5_000)).await, "a lagging clock");
    assert_eq!(runs("sweep").await, 1, "refused calls are not runs");
    assert!(start("sweep", at(PERIOD)).await, "once the period passed");
    assert_eq!(runs("sweep").await, 2);
    // The next period counts from the last start, not from the first.
    assert!(!start("sweep", at(2 * PERIOD - 1)).await);
    assert!(start("sweep", at(3 * PERIOD + 7)).await, "a late start");
    assert!(!start("sweep", at(4 * PERIOD)).await, "one period after it");
    assert!(start("sweep", at(4 * PERIOD + 7)).await);
    assert_eq!(runs("sweep").await, 4);

    // Independent jobs: starting one neither starts nor blocks another.
    assert_eq!(runs("summary").await, 0);
    assert!(start("summary", at(4 * PERIOD + 8)).await);
    assert!(!start("summary", at(4 * PERIOD + 9)).await);
    assert!(!start("sweep", at(4 * PERIOD + 9)).await);
    assert_eq!(runs("summary").await, 1);
    assert_eq!(runs("sweep").await, 4);
}

/// Many callers asking at the same instant, concurrently, for the first
/// start (the row does not exist yet) and then for later periods (the row
/// exists): each time exactly one is told to run.
pub async fn concurrent_periodic_starts_elect_exactly_one(store: DynStore) {
    for round in 0..5 {
        let now = at(round * PERIOD);
        let calls: Vec<_> = (0..8)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { store.try_start_periodic("race", now, PERIOD).await })
            })
            .collect();
        let mut won = 0;
        for c in calls {
            if c.await.expect("join").expect("try_start_periodic") {
                won += 1;
            }
        }
        assert_eq!(won, 1, "round {round}: exactly one caller starts the job");
    }
    assert_eq!(store.periodic_runs("race").await.expect("runs"), 5);
}

// ----- shared rate limits --------------------------------------------------

const WINDOW: i64 = 120_000;

/// `T0` is a multiple of [`WINDOW`]: `at(0)` starts a window.
const _: () = assert!(T0 % WINDOW == 0);

async fn hit(store: &DynStore, key: &RateLimitKey, now: Timestamp) -> RateLimitWindow {
    store
        .hit_rate_limit(key, now, WINDOW)
        .await
        .expect("hit_rate_limit")
}

/// Hits count up within a fixed window aligned to multiples of its length
/// (its first and last millisecond included), the answer names the
/// window, the next window starts again from one, a lagging clock counts
/// into the window it is in, keys and limits are independent, and keys
/// are digests.
pub async fn rate_limit_hits_count_per_key_and_window(store: DynStore) {
    let login = RateLimitKey::new("login", b"192.0.2.1");
    let first = hit(&store, &login, at(0)).await;
    assert_eq!(
        first,
        RateLimitWindow {
            start: at(0),
            end: at(WINDOW),
            hits: 1
        }
    );
    for n in 2..=5 {
        assert_eq!(hit(&store, &login, at(n * 1_000)).await.hits, n as u64);
    }
    let last_ms = hit(&store, &login, at(WINDOW - 1)).await;
    assert_eq!(
        (last_ms.start, last_ms.end, last_ms.hits),
        (at(0), at(WINDOW), 6),
        "the window's last millisecond is still in it"
    );

    // Rollover: the next window starts from one; nothing carries over.
    let next = hit(&store, &login, at(WINDOW)).await;
    assert_eq!(
        next,
        RateLimitWindow {
            start: at(WINDOW),
            end: at(2 * WINDOW),
            hits: 1
        }
    );
    assert_eq!(hit(&store, &login, at(WINDOW + 59_999)).await.hits, 2);
    // A replica whose clock lags counts into the window it is in.
    let lagging = hit(&store, &login, at(WINDOW - 10)).await;
    assert_eq!((lagging.start, lagging.hits), (at(0), 7));
    assert_eq!(hit(&store, &login, at(WINDOW + 60_000)).await.hits, 3);
    // A window in the middle of nowhere: aligned to its length, not to the
    // first hit.
    let later = hit(&store, &login, at(7 * WINDOW + 1_234)).await;
    assert_eq!(
        later,
        RateLimitWindow {
            start: at(7 * WINDOW),
            end: at(8 * WINDOW),
            hits: 1
        }
    );

    // Independent keys: another client, and the same client under another
    // limit, count from one and leave the first key's count alone.
    let other_ip = RateLimitKey::new("login", b"192.0.2.2");
    let other_limit = RateLimitKey::new("setup", b"192.0.2.1");
    assert_ne!(other_ip, login);
    assert_ne!(other_limit, login);
    assert_eq!(hit(&store, &other_ip, at(WINDOW + 1)).await.hits, 1);
    assert_eq!(hit(&store, &other_ip, at(WINDOW + 2)).await.hits, 2);
    assert_eq!(hit(&store, &other_limit, at(WINDOW + 3)).await.hits, 1);
    assert_eq!(hit(&store, &login, at(WINDOW + 4)).await.hits, 4);

    // Keys are digests: the same inputs give the same key, and nothing of
    // the client shows in it.
    assert_eq!(RateLimitKey::new("login", b"192.0.2.1"), login);
    assert_eq!(login.as_str().len(), 64);
    assert!(login.as_str().bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(!login.as_str().contains("192"));
}

/// Concurrent hits on one key and window, as from several replicas at
/// once: each counts exactly once and reads back a count of its own.
pub async fn concurrent_rate_limit_hits_each_count_once(store: DynStore) {
    let key = RateLimitKey::new("login", b"198.51.100.7");
    // Round 0 races to insert the window's row, round 1 to update it,
    // round 2 to insert the next window's.
    for (round, now) in [at(0), at(10), at(WINDOW + 10)].into_iter().enumerate() {
        let calls: Vec<_> = (0..8)
            .map(|_| {
                let (store, key) = (store.clone(), key.clone());
                tokio::spawn(async move { store.hit_rate_limit(&key, now, WINDOW).await })
            })
            .collect();
        let mut counts = Vec::new();
        for c in calls {
            counts.push(c.await.expect("join").expect("hit_rate_limit").hits);
        }
        counts.sort_unstable();
        let expected: Vec<u64> = match round {
            1 => (9..=16).collect(),
            _ => (1..=8).collect(),
        };
        assert_eq!(counts, expected, "round {round}");
    }
}

/// The sweep deletes every key's windows once one more window has passed
/// after their end (and not before), reports how many, and leaves newer
/// windows counting where they were.
pub async fn expired_rate_limit_windows_are_pruned(store: DynStore) {
    let a = RateLimitKey::new("login", b"203.0.113.1");
    let b = RateLimitKey::new("login", b"203.0.113.2");
    hit(&store, &a, at(5)).await;
    hit(&store, &a, at(6)).await;
    hit(&store, &b, at(7)).await;
    hit(&store, &a, at(WINDOW + 5)).await;
    let first = RateLimitWindow::containing(at(5), WINDOW);
    assert_eq!(first.kept_until(), at(2 * WINDOW));

    let prune = |now: Timestamp| {
        let store = store.clone();
        async move {
            store
                .delete_expired_rate_limit_windows(now)
                .await
                .expect("delete_expired_rate_limit_windows")
        }
    };
    assert_eq!(prune(at(WINDOW)).await, 0, "a window just ended is kept");
    assert_eq!(
        prune(at(2 * WINDOW - 1)).await,
        0,
        "kept until one window past its end"
    );
    // Still there: a lagging replica keeps counting into it.
    assert_eq!(hit(&store, &a, at(WINDOW - 1)).await.hits, 3);
    assert_eq!(prune(at(2 * WINDOW)).await, 2, "both keys' first windows");
    assert_eq!(prune(at(2 * WINDOW)).await, 0, "nothing left to delete");
    // The second window of `a` was not touched.
    assert_eq!(hit(&store, &a, at(WINDOW + 6)).await.hits, 2);
    // A deleted window counts afresh if a (very) lagging clock hits it.
    assert_eq!(hit(&store, &b, at(8)).await.hits, 1);
    assert_eq!(prune(at(3 * WINDOW)).await, 2);
    assert_eq!(prune(at(100 * WINDOW)).await, 0);
}

/// Announcing always succeeds. A backend that offers announcements
/// delivers one made by the same store to its listener (another store on
/// the same database is each backend's own test); SQLite offers none.
pub async fn task_announcements_reach_listeners_or_are_absent(store: DynStore) {
    store
        .announce_tasks()
        .await
        .expect("announce without listeners");
    let listening = store.task_announcements().await.expect("listen");
    let Some(mut announcements) = listening else {
        assert_eq!(
            store.backend_name(),
            "sqlite",
            "only the one-process backend may offer no announcements"
        );
        return;
    };
    assert_ne!(store.backend_name(), "sqlite", "SQLite offers none");
    store.announce_tasks().await.expect("announce");
    let got = tokio::time::timeout(std::time::Duration::from_secs(5), announcements.next())
        .await
        .expect("the announcement arrives within 5 s");
    assert_eq!(got, Some(()));
    // A second listener on the same store receives announcements too.
    let mut second = store
        .task_announcements()
        .await
        .expect("listen again")
        .expect("announcements");
    store.announce_tasks().await.expect("announce again");
    let got = tokio::time::timeout(std::time::Duration::from_secs(5), second.next())
        .await
        .expect("the second listener hears it within 5 s");
    assert_eq!(got, Some(()));
}

// ----- snapshot reads --------------------------------------------------------

async fn detail(store: &DynStore, id: &ReviewId) -> ReviewDetail {
    store
        .review_detail(id)
        .await
        .expect("review_detail")
        .expect("review exists")
}

/// `review_detail` returns what the separate reads return, at every stage
/// of a task's life, and `None` for an unknown review.
pub async fn review_detail_matches_the_separate_reads(store: DynStore) {
    let alice = user(&store, "alice@example.com").await;
    let r = runner(&store, &alice, "r1", "").await;
    let (review, t) = enqueue(&store, &alice, "", at(0)).await;
    let (other, _) = enqueue(&store, &alice, "", at(0)).await;

    let separate = |store: DynStore, id: ReviewId| async move {
        let review = store.get_review(&id).await.expect("get").expect("review");
        let task = store
            .get_task(&review.task_id)
            .await
            .expect("get task")
            .expect("task");
        ReviewDetail {
            attempts: store.task_attempts(&task.id).await.expect("attempts"),
            events: store.task_events(&task.id).await.expect("events"),
            push: store.push_state(&id).await.expect("push state"),
            review,
            task,
        }
    };

    let queued = detail(&store, &review.id).await;
    assert_eq!(queued, separate(store.clone(), review.id.clone()).await);
    assert_eq!(queued.review, review);
    assert_eq!(queued.task, t);
    assert!(queued.attempts.is_empty());
    assert_eq!(
        queued
            .events
            .iter()
            .map(|e| e.kind.as_str())
            .collect::<Vec<_>>(),
        ["enqueued"]
    );
    assert_eq!(queued.push.state, None);

    let c = claim(&store, &r, 1, at(1)).await.remove(0);
    assert_eq!(c.id, t.id);
    let running = detail(&store, &review.id).await;
    assert_eq!(running, separate(store.clone(), review.id.clone()).await);
    assert_eq!(running.task.state, TaskState::PickedUp);
    assert_eq!(running.attempts.len(), 1);
    assert_eq!(running.review.status, ReviewStatus::Pending);

    store
        .submit_result(
            &tref(&c, &r),
            result(TaskOutcome::Succeeded, None, false, at(2)),
        )
        .await
        .expect("submit");
    let done = detail(&store, &review.id).await;
    assert_eq!(done, separate(store.clone(), review.id.clone()).await);
    assert_eq!(done.task.state, TaskState::Completed);
    assert_eq!(done.review.status, ReviewStatus::Completed);
    assert_eq!(done.attempts[0].outcome.as_deref(), Some("succeeded"));
    assert_eq!(
        done.events.last().map(|e| e.kind.as_str()),
        Some("completed")
    );

    // Another review's detail is its own.
    let theirs = detail(&store, &other.id).await;
    assert_eq!(theirs, separate(store.clone(), other.id.clone()).await);
    assert_eq!(theirs.review.id, other.id);
    assert_eq!(theirs.task.review_id, other.id);

    assert_eq!(
        store
            .review_detail(&ReviewId::generate())
            .await
            .expect("review_detail of an unknown review"),
        None
    );
}

/// Checks one detail read is a state the store was actually in: the task
/// is the review's, the review's status mirrors the task's state, a
/// finished task has its final event and closed attempt, and an
/// unfinished one has neither.
fn assert_consistent(d: &ReviewDetail) {
    let ctx = || {
        format!(
            "review {} {:?}, task {:?}, attempts {:?}, events {:?}",
            d.review.id,
            d.review.status,
            d.task.state,
            d.attempts,
            d.events.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>()
        )
    };
    assert_eq!(d.task.id, d.review.task_id, "{}", ctx());
    assert_eq!(d.task.review_id, d.review.id, "{}", ctx());
    assert_eq!(
        d.review.status,
        ReviewStatus::from_task_state(d.task.state),
        "the review's status mirrors its task's state: {}",
        ctx()
    );
    let terminal = d.task.state.is_terminal();
    let final_events = d
        .events
        .iter()
        .filter(|e| matches!(e.kind.as_str(), "completed" | "failed" | "cancelled"))
        .count();
    assert_eq!(final_events, usize::from(terminal), "{}", ctx());
    assert_eq!(
        d.attempts.iter().all(|a| a.finished_at.is_some()),
        terminal || d.attempts.is_empty(),
        "an attempt is closed exactly when its task finishes: {}",
        ctx()
    );
}

/// Readers racing a writer that finishes tasks (each finish updates the
/// task, its attempt, its events and its review in one transaction) never
/// see half of a finish: every `review_detail` is consistent.
pub async fn review_detail_is_one_snapshot_under_concurrent_finishes(store: DynStore) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    const CLAIMED: usize = 30;
    const QUEUED: usize = 30;
    const READERS: usize = 4;

    let alice = user(&store, "alice@example.com").await;
    let r = runner(&store, &alice, "r1", "").await;
    let mut claimed_ids = Vec::new();
    for _ in 0..CLAIMED {
        claimed_ids.push(enqueue(&store, &alice, "", at(0)).await.0.id);
    }
    let claimed = claim(&store, &r, u32::try_from(CLAIMED).expect("count"), at(1)).await;
    assert_eq!(claimed.len(), CLAIMED);
    let mut queued = Vec::new();
    for _ in 0..QUEUED {
        queued.push(enqueue(&store, &alice, "", at(2)).await.1);
    }
    // The writer's steps, alternating finishes of claimed tasks (succeeded,
    // failed) with cancellations of pending ones.
    let mut steps = Vec::new();
    for (i, (c, q)) in claimed.into_iter().zip(queued).enumerate() {
        steps.push((c.review_id.clone(), Some((c, i % 2 == 0)), None));
        steps.push((q.review_id.clone(), None, Some(q.id)));
    }
    let targets: Arc<Vec<ReviewId>> = Arc::new(steps.iter().map(|s| s.0.clone()).collect());
    let current = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));

    let readers: Vec<_> = (0..READERS)
        .map(|n| {
            let (store, targets) = (store.clone(), targets.clone());
            let (current, done) = (current.clone(), done.clone());
            tokio::spawn(async move {
                let mut reads = 0_u32;
                while !done.load(Ordering::Acquire) {
                    // Half the readers watch the review being finished
                    // now, half the next one.
                    let i = (current.load(Ordering::Acquire) + n % 2).min(targets.len() - 1);
                    let d = store
                        .review_detail(&targets[i])
                        .await
                        .expect("review_detail")
                        .expect("review exists");
                    assert_consistent(&d);
                    reads += 1;
                }
                reads
            })
        })
        .collect();

    for (i, (_, finish, cancel)) in steps.iter().enumerate() {
        current.store(i, Ordering::Release);
        // Let the readers start on this review before it finishes.
        tokio::task::yield_now().await;
        let now = at(10 + i64::try_from(i).expect("step"));
        if let Some((c, ok)) = finish {
            let outcome = if *ok {
                result(TaskOutcome::Succeeded, None, false, now)
            } else {
                result(TaskOutcome::Failed, Some("boom"), false, now)
            };
            store
                .submit_result(&tref(c, &r), outcome)
                .await
                .expect("submit");
        }
        if let Some(id) = cancel {
            store.cancel_task(id, now).await.expect("cancel");
        }
    }
    done.store(true, Ordering::Release);
    let mut reads = 0;
    for reader in readers {
        reads += reader.await.expect("a reader saw an inconsistent detail");
    }
    assert!(reads > 0, "the readers read");

    for id in targets.iter() {
        let d = detail(&store, id).await;
        assert_consistent(&d);
        assert!(d.task.state.is_terminal(), "every task finished");
    }
}
