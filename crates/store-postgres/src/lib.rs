//! PostgreSQL backend of the ai-review store: the scale-out store.
//!
//! Several server replicas share one database. Claims use
//! `FOR UPDATE SKIP LOCKED`, so concurrent claimers on any replica never
//! receive the same task and never wait on each other; read-check-write
//! operations lock their task row (`SELECT … FOR UPDATE`); the reaper's
//! sweeps skip rows another replica is already handling. Migrations run
//! under a transaction-scoped advisory lock, so replicas starting together
//! apply each migration once.
//!
//! Periodic jobs are claimed per period with one upsert on their
//! `periodic_jobs` row, which the row lock serialises across replicas;
//! shared rate limits (the login throttle) count each attempt with one
//! upsert on their `rate_limit_windows` row, likewise.
//! Task announcements travel through `pg_notify` on the channel
//! `ai_review_tasks`; each listener has a connection of its own (a
//! dedicated one-connection pool, so it never takes one from the store's
//! pool) running `LISTEN` in a spawned task, which reconnects with backoff
//! after errors and then yields an extra item.

use ai_review_domain::{
    ApiKeyDigest, ApiKeyId, Attempt, ConfigId, ConfigKind, Email, NotificationId, PlatformType,
    ProjectId, PushSubscriptionId, ReviewId, ReviewStatus, Role, RunnerId, TaskId, TaskState,
    Timestamp, UserId, WebhookStatus,
};
use ai_review_store::rows::{
    ApiKeyRow, AuthRow, ConfigItemRow, LogLineRow, NotificationFilterParams, NotificationRow,
    ProjectRow, PushJobRow, PushSubscriptionRow, ReviewFilterParams, ReviewRow, RunnerRow,
    TaskAttemptRow, TaskEventRow, TaskRow, UserRow, WebhookEventRow, check_task_ref, convert_all,
    db_error, in_order_of, like_pattern, permissions_json, retry_refused, tags_json,
};
use ai_review_store::{AnnouncementSender, TaskAnnouncements};
use ai_review_store::{
    ApiKey, ChangeThread, Claim, ConfigItem, ConfigItemWrite, Heartbeat, HeartbeatOutcome,
    LogAppend, LogAppendOutcome, LogLine, NewApiKey, NewNotification, NewPushSubscription,
    NewReview, NewSession, NewUser, Notification, NotificationFilter, NotificationOutcome,
    NotificationStats, PhaseReport, Project, ProjectFilter, ProjectStats, ProjectUpsert, PushJob,
    PushState, PushSubscription, RateLimitKey, RateLimitWindow, ReapReport, Review, ReviewChange,
    ReviewDetail, ReviewFilter, Runner, RunnerRegistration, Session, Store, StoreError,
    StoreResult, SubmitOutcome, Task, TaskAttempt, TaskEvent, TaskRef, TaskResult, TaskTiming,
    User, UserUpdate, WebhookEvent, WebhookEventFilter, api_key_columns, authenticate_query,
    config_item_columns, notification_columns, policy, project_columns, push_subscription_columns,
    review_columns, runner_columns, task_columns, user_columns, webhook_event_columns,
};
use async_trait::async_trait;
use sqlx::Transaction;
use sqlx::pool::CloseEvent;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgListener, PgPool, PgPoolOptions, Postgres};
use std::pin::pin;
use std::str::FromStr;
use std::time::{Duration, Instant};

mod migrate;

/// The conditions of a [`ReviewFilter`] other than its status, on
/// `reviews`: created at or after `$1` and before `$2`, of project `$3` and
/// change `$4`, each ignored when NULL (bound from [`ReviewFilterParams`]).
/// The review list, its count and the status counts share it, so they
/// always select the same reviews.
macro_rules! review_filter {
    () => {
        "($1::bigint IS NULL OR created_at >= $1) AND ($2::bigint IS NULL OR created_at < $2) \
         AND ($3::text IS NULL OR project_id = $3) AND ($4::bigint IS NULL OR change_number = $4)"
    };
}

/// The conditions of a [`NotificationFilter`] on `notifications`: channel
/// `$1`, status `$2`, event `$3`, review `$4`, created at or after `$5` and
/// before `$6`, each ignored when NULL (bound from
/// [`NotificationFilterParams`]). The history page and its count share it.
macro_rules! notification_filter {
    () => {
        "($1::text IS NULL OR channel = $1) AND ($2::text IS NULL OR status = $2) \
         AND ($3::text IS NULL OR event = $3) AND ($4::text IS NULL OR review_id = $4) \
         AND ($5::bigint IS NULL OR created_at >= $5) AND ($6::bigint IS NULL OR created_at < $6)"
    };
}

/// Connections per store (per server replica).
const POOL_SIZE: u32 = 10;

/// Advisory lock key (through `hashtext`) serialising every change to the
/// set of admins made by `create_first_admin` and `update_user`, so two
/// first-run setups cannot both create an admin and two demotions cannot
/// both pass the "another enabled admin is left" check.
const ADMINS_LOCK: &str = "users:admins";

/// The `NOTIFY` channel of task announcements.
const TASKS_CHANNEL: &str = "ai_review_tasks";

/// First wait before a task-announcement listener reconnects; doubled per
/// failed try up to [`LISTEN_BACKOFF_MAX`].
const LISTEN_BACKOFF_MIN: Duration = Duration::from_millis(250);

/// Longest wait between a listener's reconnection tries.
const LISTEN_BACKOFF_MAX: Duration = Duration::from_secs(30);

/// A listener connection that lived this long before failing starts its
/// reconnection from [`LISTEN_BACKOFF_MIN`] again.
const LISTEN_HEALTHY: Duration = Duration::from_secs(60);

/// The PostgreSQL store.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    /// How `pool` connects, kept for the task-announcement listeners'
    /// own connections.
    options: PgConnectOptions,
}

impl PgStore {
    /// Connects to `url` (`postgres://user:pass@host:5432/db`), with a pool
    /// of up to 10 connections, and runs pending migrations (serialised
    /// with any other replica starting at the same time).
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(url).map_err(db_error)?;
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await
            .map_err(db_error)?;
        migrate::run(&pool).await?;
        Ok(Self { pool, options })
    }

    /// Closes the connection pool, waiting for connections in use to be
    /// returned; later calls fail. Same as [`Store::close`].
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn begin(&self) -> StoreResult<Transaction<'static, Postgres>> {
        self.pool.begin().await.map_err(db_error)
    }

    /// A connection of the pool, for reads outside a transaction.
    async fn read(&self) -> StoreResult<sqlx::pool::PoolConnection<Postgres>> {
        self.pool.acquire().await.map_err(db_error)
    }
}

/// Ends a transaction: commits on success, rolls back at once on failure.
///
/// A dropped `sqlx` transaction is only rolled back when its connection is
/// next used or returned to the pool, so a call refused after
/// `SELECT … FOR UPDATE` (a stale attempt, say) would keep its row lock a
/// little longer than the call itself, and a concurrent `SKIP LOCKED` sweep
/// (the reaper, a claim) would pass over that row. Every transaction in
/// this backend therefore runs its body in an `async` block and hands the
/// outcome here.
async fn finish<T>(tx: Transaction<'_, Postgres>, outcome: StoreResult<T>) -> StoreResult<T> {
    match outcome {
        Ok(v) => {
            tx.commit().await.map_err(db_error)?;
            Ok(v)
        }
        Err(e) => {
            if let Err(rollback) = tx.rollback().await {
                tracing::warn!(error = %rollback, "rollback after a failed store call failed");
            }
            Err(e)
        }
    }
}

/// A listener on `pool` (of one connection, its own) subscribed to the
/// task announcements.
async fn listen(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    // The listener's pool is closed only once the listener is done with it.
    listener.ignore_pool_close_event(true);
    listener.listen(TASKS_CHANNEL).await?;
    Ok(listener)
}

/// Relays the notifications `listener` receives to `tx` until the receiver
/// is dropped or the store is `closed`. After an error it drops the
/// connection, reconnects with exponential backoff and, once listening
/// again, yields one item for the announcements it may have missed. (A
/// connection `sqlx` itself re-establishes, `try_recv` answering `None`,
/// counts the same.)
async fn relay_announcements(
    listen_pool: PgPool,
    listener: PgListener,
    tx: AnnouncementSender,
    closed: CloseEvent,
) {
    relay(&listen_pool, listener, &tx, closed).await;
    // The receiver learns at once that nothing more will come; then the
    // listener's connection, returned by its drop (after an `UNLISTEN`),
    // is closed with its pool.
    drop(tx);
    let _ = tokio::time::timeout(Duration::from_secs(5), listen_pool.close()).await;
}

/// The loop of [`relay_announcements`]; returns (dropping the listener)
/// when the receiver is gone or the store closed.
async fn relay(
    listen_pool: &PgPool,
    mut listener: PgListener,
    tx: &AnnouncementSender,
    closed: CloseEvent,
) {
    let mut closed = pin!(closed);
    let mut backoff = LISTEN_BACKOFF_MIN;
    'relay: loop {
        let connected_at = Instant::now();
        let error = loop {
            tokio::select! {
                received = listener.try_recv() => match received {
                    // `Some`: an announcement; `None`: the connection was
                    // lost and re-established, announcements may be lost.
                    Ok(_) => {
                        if !tx.announce() {
                            break 'relay;
                        }
                    }
                    Err(e) => break e,
                },
                () = &mut closed => break 'relay,
                () = tx.closed() => break 'relay,
            }
        };
        drop(listener);
        if connected_at.elapsed() >= LISTEN_HEALTHY {
            backoff = LISTEN_BACKOFF_MIN;
        }
        tracing::warn!(
            error = %error,
            retry_in_ms = backoff.as_millis(),
            "task announcements: the LISTEN connection failed; reconnecting"
        );
        listener = loop {
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = &mut closed => break 'relay,
                () = tx.closed() => break 'relay,
            }
            backoff = (backoff * 2).min(LISTEN_BACKOFF_MAX);
            let attempt = tokio::select! {
                attempt = listen(listen_pool) => attempt,
                () = &mut closed => break 'relay,
                () = tx.closed() => break 'relay,
            };
            match attempt {
                Ok(l) => break l,
                Err(e) => tracing::warn!(
                    error = %e,
                    retry_in_ms = backoff.as_millis(),
                    "task announcements: cannot listen again yet"
                ),
            }
        };
        tracing::info!("task announcements: listening again");
        if !tx.announce() {
            break;
        }
    }
}

/// Reports a unique violation on `users` as the taken email it is.
fn email_taken(e: sqlx::Error, email: &Email) -> StoreError {
    match db_error(e) {
        StoreError::Conflict(_) => {
            StoreError::Conflict(format!("a user with email {email} already exists"))
        }
        other => other,
    }
}

async fn lock_admins(c: &mut PgConnection) -> StoreResult<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
        .bind(ADMINS_LOCK)
        .execute(&mut *c)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// A live session joined with its user, as read by `session_user`.
#[derive(sqlx::FromRow)]
struct SessionUserRow {
    #[sqlx(flatten)]
    user: UserRow,
    s_digest: String,
    s_created_at: i64,
    s_last_seen_at: i64,
    s_expires_at: i64,
}

impl SessionUserRow {
    fn into_parts(self) -> StoreResult<(Session, User)> {
        let user = User::try_from(self.user)?;
        let session = Session {
            digest: ApiKeyDigest::from_hex(self.s_digest),
            user_id: user.id.clone(),
            created_at: Timestamp::from_millis(self.s_created_at),
            last_seen_at: Timestamp::from_millis(self.s_last_seen_at),
            expires_at: Timestamp::from_millis(self.s_expires_at),
        };
        Ok((session, user))
    }
}

fn taken(id: &RunnerId) -> StoreError {
    StoreError::Conflict(format!(
        "runner id {id} is registered by another user; pick another RUNNER_NAME/x-runner-id"
    ))
}

// Single reads on a connection: the trait's one-row getters run them on a
// pooled connection, [`read_review_detail`] several of them in one
// snapshot transaction.

async fn find_review(c: &mut PgConnection, id: &ReviewId) -> StoreResult<Option<Review>> {
    let row: Option<ReviewRow> = sqlx::query_as(concat!(
        "SELECT ",
        review_columns!(),
        " FROM reviews WHERE id = $1"
    ))
    .bind(id.as_str())
    .fetch_optional(&mut *c)
    .await
    .map_err(db_error)?;
    row.map(Review::try_from).transpose()
}

async fn find_task(c: &mut PgConnection, id: &TaskId) -> StoreResult<Option<Task>> {
    let row: Option<TaskRow> = sqlx::query_as(concat!(
        "SELECT ",
        task_columns!(),
        " FROM tasks WHERE id = $1"
    ))
    .bind(id.as_str())
    .fetch_optional(&mut *c)
    .await
    .map_err(db_error)?;
    row.map(Task::try_from).transpose()
}

async fn find_task_events(c: &mut PgConnection, id: &TaskId) -> StoreResult<Vec<TaskEvent>> {
    let rows: Vec<TaskEventRow> = sqlx::query_as(
        "SELECT attempt, kind, detail, at FROM task_events WHERE task_id = $1 ORDER BY id",
    )
    .bind(id.as_str())
    .fetch_all(&mut *c)
    .await
    .map_err(db_error)?;
    convert_all(rows)
}

async fn find_task_attempts(c: &mut PgConnection, id: &TaskId) -> StoreResult<Vec<TaskAttempt>> {
    let rows: Vec<TaskAttemptRow> = sqlx::query_as(
        "SELECT attempt, runner_id, claimed_at, finished_at, outcome, reason \
         FROM task_attempts WHERE task_id = $1 ORDER BY attempt",
    )
    .bind(id.as_str())
    .fetch_all(&mut *c)
    .await
    .map_err(db_error)?;
    convert_all(rows)
}

/// A review's push-back state; `None` if there is no such review.
async fn find_push_state(
    c: &mut PgConnection,
    review: &ReviewId,
) -> StoreResult<Option<PushState>> {
    let row: Option<(Option<String>, i64, Option<String>)> =
        sqlx::query_as("SELECT push_state, push_attempts, push_error FROM reviews WHERE id = $1")
            .bind(review.as_str())
            .fetch_optional(&mut *c)
            .await
            .map_err(db_error)?;
    Ok(row.map(|(state, attempts, error)| PushState {
        state,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        error,
    }))
}

/// [`Store::review_detail`]'s reads, on `c` (inside the caller's
/// `REPEATABLE READ` transaction, which makes them one snapshot).
async fn read_review_detail(
    c: &mut PgConnection,
    id: &ReviewId,
) -> StoreResult<Option<ReviewDetail>> {
    let Some(review) = find_review(c, id).await? else {
        return Ok(None);
    };
    let task = find_task(c, &review.task_id).await?.ok_or_else(|| {
        StoreError::Corrupt(format!("review {id} has no task {}", review.task_id))
    })?;
    let attempts = find_task_attempts(c, &task.id).await?;
    let events = find_task_events(c, &task.id).await?;
    let push = find_push_state(c, id)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("review {id} vanished in a snapshot")))?;
    Ok(Some(ReviewDetail {
        review,
        task,
        attempts,
        events,
        push,
    }))
}

/// Loads a task and locks its row until the transaction ends.
async fn load_task(c: &mut PgConnection, id: &TaskId) -> StoreResult<Task> {
    let row: Option<TaskRow> = sqlx::query_as(concat!(
        "SELECT ",
        task_columns!(),
        " FROM tasks WHERE id = $1 FOR UPDATE"
    ))
    .bind(id.as_str())
    .fetch_optional(&mut *c)
    .await
    .map_err(db_error)?;
    row.ok_or_else(|| StoreError::not_found("task", id))?
        .try_into()
}

async fn event(
    c: &mut PgConnection,
    task: &TaskId,
    attempt: Attempt,
    kind: &str,
    detail: &str,
    at: Timestamp,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO task_events (task_id, attempt, kind, detail, at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(task.as_str())
    .bind(i64::from(attempt.0))
    .bind(kind)
    .bind(detail)
    .bind(at.as_millis())
    .execute(&mut *c)
    .await
    .map_err(db_error)?;
    Ok(())
}

async fn set_review_status(
    c: &mut PgConnection,
    review: &ReviewId,
    state: TaskState,
    now: Timestamp,
) -> StoreResult<()> {
    sqlx::query("UPDATE reviews SET status = $2, updated_at = $3 WHERE id = $1")
        .bind(review.as_str())
        .bind(ReviewStatus::from_task_state(state).as_str())
        .bind(now.as_millis())
        .execute(&mut *c)
        .await
        .map_err(db_error)?;
    Ok(())
}

async fn close_attempt(
    c: &mut PgConnection,
    task: &TaskId,
    attempt: Attempt,
    outcome: &str,
    reason: Option<&str>,
    digest: Option<&str>,
    now: Timestamp,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE task_attempts SET finished_at = $3, outcome = $4, reason = $5, result_digest = $6 \
         WHERE task_id = $1 AND attempt = $2",
    )
    .bind(task.as_str())
    .bind(i64::from(attempt.0))
    .bind(now.as_millis())
    .bind(outcome)
    .bind(reason)
    .bind(digest)
    .execute(&mut *c)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Writes a policy decision for an active task: new state, cleared lease,
/// the review's mirrored status and a history event.
async fn apply_transition(
    c: &mut PgConnection,
    task: &Task,
    t: &policy::Transition,
    result: Option<&serde_json::Value>,
    requeue_expires_at: Timestamp,
    now: Timestamp,
) -> StoreResult<Task> {
    let terminal = t.state.is_terminal();
    let row: TaskRow = sqlx::query_as(concat!(
        "UPDATE tasks SET state = $2, failure_reason = $3, lease_expires_at = NULL, phase = NULL, \
         runner_id = CASE WHEN $4::boolean THEN runner_id ELSE NULL END, \
         expires_at = CASE WHEN $4::boolean THEN expires_at ELSE $5 END, \
         result = COALESCE($6::text, result), updated_at = $7, \
         finished_at = CASE WHEN $4::boolean THEN $7 ELSE NULL END \
         WHERE id = $1 RETURNING ",
        task_columns!()
    ))
    .bind(task.id.as_str())
    .bind(t.state.as_str())
    .bind(t.failure_reason.as_deref())
    .bind(terminal)
    .bind(requeue_expires_at.as_millis())
    .bind(result.map(ToString::to_string))
    .bind(now.as_millis())
    .fetch_one(&mut *c)
    .await
    .map_err(db_error)?;
    event(c, &task.id, task.attempt, t.event, &t.detail, now).await?;
    if terminal {
        set_review_status(c, &task.review_id, t.state, now).await?;
    }
    row.try_into()
}

/// Serialises the enqueues of one forge change with an advisory lock held
/// until the transaction ends, so two reviews of a change never get the
/// same round or miss each other when superseding.
async fn lock_change(c: &mut PgConnection, change: &ReviewChange) -> StoreResult<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
        .bind(format!(
            "review-change:{}:{}",
            change.project_id, change.number
        ))
        .execute(&mut *c)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// The body of `enqueue_review` and `enqueue_retry`, inside the caller's
/// transaction: for a change's review, takes the change's lock, numbers
/// the round and supersedes the change's unfinished reviews; then inserts
/// the review, its pending task and the `enqueued` event.
async fn enqueue(c: &mut PgConnection, r: &NewReview) -> StoreResult<(Review, Task)> {
    let round: u32 = match &r.change {
        None => 1,
        Some(change) => {
            lock_change(c, change).await?;
            let last: Option<i64> = sqlx::query_scalar(
                "SELECT MAX(round_number) FROM reviews \
                 WHERE project_id = $1 AND change_number = $2",
            )
            .bind(change.project_id.as_str())
            .bind(i64::try_from(change.number).unwrap_or(i64::MAX))
            .fetch_one(&mut *c)
            .await
            .map_err(db_error)?;
            let older: Vec<(String, String, String, i64)> = sqlx::query_as(
                "SELECT t.id, t.review_id, t.state, t.attempt \
                 FROM tasks t JOIN reviews r ON r.id = t.review_id \
                 WHERE r.project_id = $1 AND r.change_number = $2 \
                 AND t.state IN ('pending', 'picked_up', 'executing') FOR UPDATE OF t",
            )
            .bind(change.project_id.as_str())
            .bind(i64::try_from(change.number).unwrap_or(i64::MAX))
            .fetch_all(&mut *c)
            .await
            .map_err(db_error)?;
            let why = format!("superseded by review {}", r.id);
            for (task_id, review_id, state, attempt) in older {
                let task_id =
                    TaskId::parse(&task_id).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                let review_id =
                    ReviewId::parse(&review_id).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                let attempt = Attempt(u32::try_from(attempt).unwrap_or(0));
                if state == "pending" {
                    sqlx::query(
                        "UPDATE tasks SET state = 'cancelled', failure_reason = $2, \
                         updated_at = $3, finished_at = $3 WHERE id = $1",
                    )
                    .bind(task_id.as_str())
                    .bind(&why)
                    .bind(r.now.as_millis())
                    .execute(&mut *c)
                    .await
                    .map_err(db_error)?;
                    event(c, &task_id, attempt, "cancelled", &why, r.now).await?;
                    set_review_status(c, &review_id, TaskState::Cancelled, r.now).await?;
                } else {
                    sqlx::query(
                        "UPDATE tasks SET cancel_requested = TRUE, failure_reason = $3, \
                         updated_at = $2 WHERE id = $1",
                    )
                    .bind(task_id.as_str())
                    .bind(r.now.as_millis())
                    .bind(&why)
                    .execute(&mut *c)
                    .await
                    .map_err(db_error)?;
                    event(c, &task_id, attempt, "cancel_requested", &why, r.now).await?;
                }
            }
            u32::try_from(last.unwrap_or(0)).unwrap_or(0) + 1
        }
    };
    let review: ReviewRow = sqlx::query_as(concat!(
        "INSERT INTO reviews (id, task_id, repo_url, base_sha, head_sha, branch, title, status, \
         created_by, created_at, updated_at, project_id, change_number, round_number, \
         send_to_platform, push_state, push_next_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $9, $9, $10, $11, $12, $13, $14, $9) \
         RETURNING ",
        review_columns!()
    ))
    .bind(r.id.as_str())
    .bind(r.task_id.as_str())
    .bind(r.repo_url.as_str())
    .bind(r.base_sha.as_str())
    .bind(r.head_sha.as_str())
    .bind(r.branch.as_deref())
    .bind(r.title.as_deref())
    .bind(r.created_by.as_str())
    .bind(r.now.as_millis())
    .bind(r.change.as_ref().map(|ch| ch.project_id.as_str()))
    .bind(
        r.change
            .as_ref()
            .map(|ch| i64::try_from(ch.number).unwrap_or(i64::MAX)),
    )
    .bind(i64::from(round))
    .bind(r.change.as_ref().is_some_and(|ch| ch.send_to_platform))
    .bind(
        r.change
            .as_ref()
            .is_some_and(|ch| ch.send_to_platform)
            .then_some("pending"),
    )
    .fetch_one(&mut *c)
    .await
    .map_err(db_error)?;
    let task: TaskRow = sqlx::query_as(concat!(
        "INSERT INTO tasks (id, review_id, state, attempt, max_attempts, required_tags, \
         expires_at, spec, created_at, updated_at) \
         VALUES ($1, $2, 'pending', 0, $3, $4, $5, $6, $7, $7) RETURNING ",
        task_columns!()
    ))
    .bind(r.task_id.as_str())
    .bind(r.id.as_str())
    .bind(i64::from(r.max_attempts))
    .bind(tags_json(&r.required_tags))
    .bind(r.expires_at.as_millis())
    .bind(r.spec.to_string())
    .bind(r.now.as_millis())
    .fetch_one(&mut *c)
    .await
    .map_err(db_error)?;
    event(c, &r.task_id, Attempt(0), "enqueued", "", r.now).await?;
    Ok((review.try_into()?, task.try_into()?))
}

#[async_trait]
impl Store for PgStore {
    fn backend_name(&self) -> &'static str {
        "postgres"
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn close(&self) {
        PgStore::close(self).await;
    }

    async fn create_user(&self, u: NewUser) -> StoreResult<User> {
        sqlx::query(
            "INSERT INTO users (id, email, password_hash, role, permissions, disabled, created_at) \
             VALUES ($1, $2, $3, $4, $5, FALSE, $6)",
        )
        .bind(u.id.as_str())
        .bind(u.email.as_str())
        .bind(&u.password_hash)
        .bind(u.role.as_str())
        .bind(permissions_json(&u.permissions))
        .bind(u.now.as_millis())
        .execute(&self.pool)
        .await
        .map_err(|e| email_taken(e, &u.email))?;
        Ok(User {
            id: u.id,
            email: u.email,
            password_hash: u.password_hash,
            role: u.role,
            permissions: u.permissions,
            disabled: false,
            created_at: u.now,
        })
    }

    async fn user_by_email(&self, email: &Email) -> StoreResult<Option<User>> {
        let row: Option<UserRow> = sqlx::query_as(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE email = $1"
        ))
        .bind(email.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.map(User::try_from).transpose()
    }

    async fn user_by_id(&self, id: &UserId) -> StoreResult<Option<User>> {
        let row: Option<UserRow> = sqlx::query_as(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.map(User::try_from).transpose()
    }

    async fn count_admins(&self) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE role = 'admin'")
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(n.unsigned_abs())
    }

    async fn create_first_admin(&self, u: NewUser) -> StoreResult<Option<User>> {
        let mut tx = self.begin().await?;
        let outcome = async {
            lock_admins(&mut tx).await?;
            let admins: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE role = 'admin'")
                .fetch_one(&mut *tx)
                .await
                .map_err(db_error)?;
            if admins > 0 {
                return Ok(None);
            }
            sqlx::query(
                "INSERT INTO users (id, email, password_hash, role, permissions, disabled, \
                 created_at) VALUES ($1, $2, $3, 'admin', $4, FALSE, $5)",
            )
            .bind(u.id.as_str())
            .bind(u.email.as_str())
            .bind(&u.password_hash)
            .bind(permissions_json(&u.permissions))
            .bind(u.now.as_millis())
            .execute(&mut *tx)
            .await
            .map_err(|e| email_taken(e, &u.email))?;
            Ok(Some(User {
                id: u.id,
                email: u.email,
                password_hash: u.password_hash,
                role: Role::Admin,
                permissions: u.permissions,
                disabled: false,
                created_at: u.now,
            }))
        }
        .await;
        finish(tx, outcome).await
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        let rows: Vec<UserRow> = sqlx::query_as(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users ORDER BY created_at, id"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        convert_all(rows)
    }

    async fn update_user(&self, up: UserUpdate) -> StoreResult<User> {
        let mut tx = self.begin().await?;
        let outcome = async {
            lock_admins(&mut tx).await?;
            let before: Option<UserRow> = sqlx::query_as(concat!(
                "SELECT ",
                user_columns!(),
                " FROM users WHERE id = $1 FOR UPDATE"
            ))
            .bind(up.id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?;
            let before =
                User::try_from(before.ok_or_else(|| StoreError::not_found("user", &up.id))?)?;
            let row: UserRow = sqlx::query_as(concat!(
                "UPDATE users SET role = COALESCE($2::text, role), \
                 permissions = COALESCE($3::text, permissions), \
                 disabled = COALESCE($4::boolean, disabled), \
                 password_hash = COALESCE($5::text, password_hash) WHERE id = $1 RETURNING ",
                user_columns!()
            ))
            .bind(up.id.as_str())
            .bind(up.role.map(Role::as_str))
            .bind(up.permissions.as_deref().map(permissions_json))
            .bind(up.disabled)
            .bind(up.password_hash.as_deref())
            .fetch_one(&mut *tx)
            .await
            .map_err(db_error)?;
            let user = User::try_from(row)?;
            let was_enabled_admin = before.role == Role::Admin && !before.disabled;
            let is_enabled_admin = user.role == Role::Admin && !user.disabled;
            if was_enabled_admin && !is_enabled_admin {
                let left: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM users WHERE role = 'admin' AND NOT disabled",
                )
                .fetch_one(&mut *tx)
                .await
                .map_err(db_error)?;
                if left == 0 {
                    return Err(StoreError::Conflict(format!(
                        "the change would leave no enabled admin; {} is the last one",
                        user.email
                    )));
                }
            }
            if up.disabled == Some(true) || up.password_hash.is_some() {
                sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                    .bind(up.id.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
            }
            Ok(user)
        }
        .await;
        finish(tx, outcome).await
    }

    async fn create_session(&self, s: NewSession) -> StoreResult<Session> {
        sqlx::query(
            "INSERT INTO sessions (digest, user_id, created_at, last_seen_at, expires_at) \
             VALUES ($1, $2, $3, $3, $4)",
        )
        .bind(s.digest.as_str())
        .bind(s.user_id.as_str())
        .bind(s.now.as_millis())
        .bind(s.expires_at.as_millis())
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(Session {
            digest: s.digest,
            user_id: s.user_id,
            created_at: s.now,
            last_seen_at: s.now,
            expires_at: s.expires_at,
        })
    }

    async fn session_user(
        &self,
        digest: &ApiKeyDigest,
        now: Timestamp,
    ) -> StoreResult<Option<(Session, User)>> {
        let row: Option<SessionUserRow> = sqlx::query_as(
            "SELECT u.id, u.email, u.password_hash, u.role, u.permissions, u.disabled, \
             u.created_at, s.digest AS s_digest, s.created_at AS s_created_at, \
             s.last_seen_at AS s_last_seen_at, s.expires_at AS s_expires_at \
             FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.digest = $1 AND s.expires_at > $2 AND NOT u.disabled",
        )
        .bind(digest.as_str())
        .bind(now.as_millis())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        let Some(row) = row else { return Ok(None) };
        let (session, user) = row.into_parts()?;
        // As for API keys: the lookup was by digest; compare again in
        // constant time so no index or collation quirk can match another.
        Ok(session.digest.ct_eq(digest).then_some((session, user)))
    }

    async fn extend_session(
        &self,
        digest: &ApiKeyDigest,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> StoreResult<()> {
        sqlx::query("UPDATE sessions SET last_seen_at = $2, expires_at = $3 WHERE digest = $1")
            .bind(digest.as_str())
            .bind(now.as_millis())
            .bind(expires_at.as_millis())
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn delete_session(&self, digest: &ApiKeyDigest) -> StoreResult<()> {
        sqlx::query("DELETE FROM sessions WHERE digest = $1")
            .bind(digest.as_str())
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn delete_expired_sessions(&self, now: Timestamp) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now.as_millis())
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected())
    }

    async fn create_api_key(&self, k: NewApiKey) -> StoreResult<ApiKey> {
        sqlx::query(
            "INSERT INTO api_keys (id, user_id, name, prefix, digest, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(k.id.as_str())
        .bind(k.user_id.as_str())
        .bind(&k.name)
        .bind(&k.prefix)
        .bind(k.digest.as_str())
        .bind(k.now.as_millis())
        .bind(k.expires_at.map(Timestamp::as_millis))
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(ApiKey {
            id: k.id,
            user_id: k.user_id,
            name: k.name,
            prefix: k.prefix,
            digest: k.digest,
            created_at: k.now,
            last_used_at: None,
            expires_at: k.expires_at,
            revoked_at: None,
        })
    }

    async fn authenticate_api_key(
        &self,
        digest: &ApiKeyDigest,
        now: Timestamp,
    ) -> StoreResult<Option<(ApiKey, User)>> {
        let row: Option<AuthRow> = sqlx::query_as(authenticate_query!("$1", "$2"))
            .bind(digest.as_str())
            .bind(now.as_millis())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
        let Some(row) = row else { return Ok(None) };
        let (key, user) = <(ApiKey, User)>::try_from(row)?;
        // The lookup was by digest; compare again in constant time so no
        // index or collation quirk can ever match a different key.
        Ok(key.digest.ct_eq(digest).then_some((key, user)))
    }

    async fn touch_api_key(&self, id: &ApiKeyId, now: Timestamp) -> StoreResult<()> {
        sqlx::query("UPDATE api_keys SET last_used_at = $2 WHERE id = $1")
            .bind(id.as_str())
            .bind(now.as_millis())
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn list_api_keys(&self, owner: &UserId) -> StoreResult<Vec<ApiKey>> {
        let rows: Vec<ApiKeyRow> = sqlx::query_as(concat!(
            "SELECT ",
            api_key_columns!(),
            " FROM api_keys WHERE user_id = $1 ORDER BY created_at DESC, id DESC"
        ))
        .bind(owner.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        convert_all(rows)
    }

    async fn api_key_by_id(&self, id: &ApiKeyId) -> StoreResult<Option<ApiKey>> {
        let row: Option<ApiKeyRow> = sqlx::query_as(concat!(
            "SELECT ",
            api_key_columns!(),
            " FROM api_keys WHERE id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.map(ApiKey::try_from).transpose()
    }

    async fn revoke_api_key(&self, id: &ApiKeyId, now: Timestamp) -> StoreResult<ApiKey> {
        let row: Option<ApiKeyRow> = sqlx::query_as(concat!(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1 RETURNING ",
            api_key_columns!()
        ))
        .bind(id.as_str())
        .bind(now.as_millis())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.ok_or_else(|| StoreError::not_found("API key", id))?
            .try_into()
    }

    async fn register_runner(&self, reg: RunnerRegistration) -> StoreResult<Runner> {
        let mut tx = self.begin().await?;
        let outcome = async {
            let owner: Option<String> =
                sqlx::query_scalar("SELECT owner_id FROM runners WHERE id = $1 FOR UPDATE")
                    .bind(reg.id.as_str())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_error)?;
            if owner.is_some_and(|o| o != reg.owner.as_str()) {
                return Err(taken(&reg.id));
            }
            let row: Option<RunnerRow> = sqlx::query_as(concat!(
                "INSERT INTO runners (id, name, version, max_concurrency, tags, status, \
                 active_jobs, owner_id, registered_at, last_heartbeat_at) \
                 VALUES ($1, $2, $3, $4, $5, 'online', 0, $6, $7, $7) \
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, version = excluded.version, \
                 max_concurrency = excluded.max_concurrency, tags = excluded.tags, \
                 status = 'online', last_heartbeat_at = excluded.last_heartbeat_at \
                 WHERE runners.owner_id = excluded.owner_id RETURNING ",
                runner_columns!()
            ))
            .bind(reg.id.as_str())
            .bind(&reg.name)
            .bind(&reg.version)
            .bind(i64::from(reg.max_concurrency))
            .bind(tags_json(&reg.tags))
            .bind(reg.owner.as_str())
            .bind(reg.now.as_millis())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?;
            // No row: another user registered this id between our check and
            // the insert (the `FOR UPDATE` above cannot lock a row that does not
            // exist yet); the upsert's `WHERE` refused to take it over.
            row.ok_or_else(|| taken(&reg.id))?.try_into()
        }
        .await;
        finish(tx, outcome).await
    }

    async fn get_runner(&self, id: &RunnerId) -> StoreResult<Option<Runner>> {
        let row: Option<RunnerRow> = sqlx::query_as(concat!(
            "SELECT ",
            runner_columns!(),
            " FROM runners WHERE id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.map(Runner::try_from).transpose()
    }

    async fn list_runners(&self) -> StoreResult<Vec<Runner>> {
        let rows: Vec<RunnerRow> = sqlx::query_as(concat!(
            "SELECT ",
            runner_columns!(),
            " FROM runners ORDER BY last_heartbeat_at DESC, id"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        convert_all(rows)
    }

    async fn heartbeat(&self, hb: Heartbeat) -> StoreResult<HeartbeatOutcome> {
        let mut tx = self.begin().await?;
        let outcome = async {
            let row: Option<RunnerRow> = sqlx::query_as(concat!(
                "UPDATE runners SET status = $2, active_jobs = $3, last_heartbeat_at = $4 \
                 WHERE id = $1 RETURNING ",
                runner_columns!()
            ))
            .bind(hb.runner_id.as_str())
            .bind(hb.status.as_str())
            .bind(i64::from(hb.active_jobs))
            .bind(hb.now.as_millis())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?;
            let runner = Runner::try_from(
                row.ok_or_else(|| StoreError::not_found("runner", &hb.runner_id))?,
            )?;
            let held: Vec<(String, bool)> = sqlx::query_as(
                "UPDATE tasks SET lease_expires_at = $2 \
                 WHERE runner_id = $1 AND state IN ('picked_up', 'executing') \
                 RETURNING id, cancel_requested",
            )
            .bind(hb.runner_id.as_str())
            .bind(hb.lease_until.as_millis())
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error)?;
            let mut renewed = Vec::with_capacity(held.len());
            let mut cancel = Vec::new();
            for (id, cancel_requested) in held {
                let id = TaskId::parse(&id).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                if cancel_requested {
                    cancel.push(id.clone());
                }
                renewed.push(id);
            }
            Ok(HeartbeatOutcome {
                runner,
                renewed,
                cancel,
            })
        }
        .await;
        finish(tx, outcome).await
    }

    async fn mark_silent_runners_offline(
        &self,
        silent_since: Timestamp,
        _now: Timestamp,
    ) -> StoreResult<Vec<RunnerId>> {
        let ids: Vec<String> = sqlx::query_scalar(
            "UPDATE runners SET status = 'offline', active_jobs = 0 \
             WHERE status <> 'offline' AND last_heartbeat_at < $1 RETURNING id",
        )
        .bind(silent_since.as_millis())
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        ids.iter()
            .map(|s| RunnerId::parse(s).map_err(|e| StoreError::Corrupt(e.to_string())))
            .collect()
    }

    async fn enqueue_review(&self, r: NewReview) -> StoreResult<(Review, Task)> {
        let mut tx = self.begin().await?;
        let outcome = enqueue(&mut tx, &r).await;
        finish(tx, outcome).await
    }

    async fn enqueue_retry(&self, of: &ReviewId, r: NewReview) -> StoreResult<(Review, Task)> {
        let mut tx = self.begin().await?;
        let outcome = async {
            // The conditional update is the check: a concurrent retry of the
            // same review waits on its row lock, then finds `retried_as` set.
            // The change's lock comes first, in the order `enqueue` takes
            // its locks, so a concurrent review of the change queues up
            // behind this one instead of deadlocking with it.
            if let Some(change) = &r.change {
                lock_change(&mut tx, change).await?;
            }
            let marked = sqlx::query(
                "UPDATE reviews SET retried_as = $2 WHERE id = $1 AND retried_as IS NULL",
            )
            .bind(of.as_str())
            .bind(r.id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
            if marked.rows_affected() == 0 {
                let retried_as: Option<Option<String>> =
                    sqlx::query_scalar("SELECT retried_as FROM reviews WHERE id = $1")
                        .bind(of.as_str())
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(db_error)?;
                return Err(retry_refused(of, retried_as));
            }
            enqueue(&mut tx, &r).await
        }
        .await;
        finish(tx, outcome).await
    }

    async fn get_review(&self, id: &ReviewId) -> StoreResult<Option<Review>> {
        find_review(&mut *self.read().await?, id).await
    }

    async fn review_detail(&self, id: &ReviewId) -> StoreResult<Option<ReviewDetail>> {
        let mut tx = self.begin().await?;
        let outcome = async {
            // Must be the transaction's first statement: the snapshot is
            // taken by the first query after it and kept to the end.
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
            read_review_detail(&mut tx, id).await
        }
        .await;
        finish(tx, outcome).await
    }

    async fn get_reviews(&self, ids: &[ReviewId]) -> StoreResult<Vec<Review>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<&str> = ids.iter().map(ReviewId::as_str).collect();
        let rows: Vec<ReviewRow> = sqlx::query_as(concat!(
            "SELECT ",
            review_columns!(),
            " FROM reviews WHERE id = ANY($1)"
        ))
        .bind(keys)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(in_order_of(ids, convert_all(rows)?, |r: &Review| &r.id))
    }

    async fn list_reviews(&self, f: &ReviewFilter) -> StoreResult<(Vec<Review>, u64)> {
        let p = ReviewFilterParams::from(f);
        let rows: Vec<ReviewRow> = sqlx::query_as(concat!(
            "SELECT ",
            review_columns!(),
            " FROM reviews WHERE ",
            review_filter!(),
            " AND ($5::text IS NULL OR status = $5) \
             ORDER BY created_at DESC, id DESC LIMIT $6 OFFSET $7"
        ))
        .bind(p.start)
        .bind(p.end)
        .bind(p.project_id)
        .bind(p.change_number)
        .bind(p.status)
        .bind(i64::from(f.limit))
        .bind(i64::try_from(f.offset).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        let total: i64 = sqlx::query_scalar(concat!(
            "SELECT COUNT(*) FROM reviews WHERE ",
            review_filter!(),
            " AND ($5::text IS NULL OR status = $5)"
        ))
        .bind(p.start)
        .bind(p.end)
        .bind(p.project_id)
        .bind(p.change_number)
        .bind(p.status)
        .fetch_one(&self.pool)
        .await
        .map_err(db_error)?;
        Ok((convert_all(rows)?, total.unsigned_abs()))
    }

    async fn review_status_counts(
        &self,
        f: &ReviewFilter,
    ) -> StoreResult<Vec<(ReviewStatus, u64)>> {
        let p = ReviewFilterParams::from(f);
        let rows: Vec<(String, i64)> = sqlx::query_as(concat!(
            "SELECT status, COUNT(*) FROM reviews WHERE ",
            review_filter!(),
            " GROUP BY status ORDER BY status"
        ))
        .bind(p.start)
        .bind(p.end)
        .bind(p.project_id)
        .bind(p.change_number)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.into_iter()
            .map(|(s, n)| {
                ReviewStatus::parse(&s)
                    .map(|s| (s, n.unsigned_abs()))
                    .map_err(|e| StoreError::Corrupt(e.to_string()))
            })
            .collect()
    }

    async fn get_task(&self, id: &TaskId) -> StoreResult<Option<Task>> {
        find_task(&mut *self.read().await?, id).await
    }

    async fn get_tasks(&self, ids: &[TaskId]) -> StoreResult<Vec<Task>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<&str> = ids.iter().map(TaskId::as_str).collect();
        let rows: Vec<TaskRow> = sqlx::query_as(concat!(
            "SELECT ",
            task_columns!(),
            " FROM tasks WHERE id = ANY($1)"
        ))
        .bind(keys)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(in_order_of(ids, convert_all(rows)?, |t: &Task| &t.id))
    }

    async fn claim_tasks(&self, c: Claim) -> StoreResult<Vec<Task>> {
        if c.limit == 0 {
            return Ok(Vec::new());
        }
        let mut tx = self.begin().await?;
        let outcome = async {
            let rows: Vec<TaskRow> = sqlx::query_as(concat!(
                "UPDATE tasks SET state = 'picked_up', runner_id = $1, attempt = attempt + 1, \
                 phase = NULL, lease_expires_at = $3, updated_at = $2 \
                 WHERE id IN (SELECT t.id FROM tasks t WHERE t.state = 'pending' AND t.expires_at > $2 \
                 AND t.required_tags::jsonb <@ $4::jsonb \
                 ORDER BY t.created_at, t.id LIMIT $5 FOR UPDATE SKIP LOCKED) \
                 RETURNING ",
                task_columns!()
            ))
            .bind(c.runner_id.as_str())
            .bind(c.now.as_millis())
            .bind(c.lease_until.as_millis())
            .bind(tags_json(&c.runner_tags))
            .bind(i64::from(c.limit))
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error)?;
            let mut tasks: Vec<Task> = convert_all(rows)?;
            tasks.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
            for t in &tasks {
                sqlx::query(
                    "INSERT INTO task_attempts (task_id, attempt, runner_id, claimed_at) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(t.id.as_str())
                .bind(i64::from(t.attempt.0))
                .bind(c.runner_id.as_str())
                .bind(c.now.as_millis())
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
                event(
                    &mut tx,
                    &t.id,
                    t.attempt,
                    "claimed",
                    c.runner_id.as_str(),
                    c.now,
                )
                .await?;
            }
            Ok::<_, StoreError>(tasks)
        }
        .await;
        finish(tx, outcome).await
    }

    async fn report_phase(&self, r: &TaskRef, p: PhaseReport) -> StoreResult<Task> {
        let mut tx = self.begin().await?;
        let outcome = async {
            let task = load_task(&mut tx, &r.task_id).await?;
            check_task_ref(&task, r)?;
            let row: TaskRow = sqlx::query_as(concat!(
                "UPDATE tasks SET phase = $2, state = 'executing', lease_expires_at = $3, \
                 updated_at = $4 WHERE id = $1 RETURNING ",
                task_columns!()
            ))
            .bind(r.task_id.as_str())
            .bind(p.phase.as_str())
            .bind(p.lease_until.as_millis())
            .bind(p.now.as_millis())
            .fetch_one(&mut *tx)
            .await
            .map_err(db_error)?;
            event(
                &mut tx,
                &r.task_id,
                r.attempt,
                "phase",
                p.phase.as_str(),
                p.now,
            )
            .await?;
            row.try_into()
        }
        .await;
        finish(tx, outcome).await
    }

    async fn append_logs(&self, r: &TaskRef, logs: LogAppend) -> StoreResult<LogAppendOutcome> {
        let mut tx = self.begin().await?;
        let outcome = async {
            let task = load_task(&mut tx, &r.task_id).await?;
            check_task_ref(&task, r)?;
            let plan = ai_review_store::policy::plan_log_append(task.log_bytes, &logs);
            for line in logs.lines.iter().take(plan.accepted as usize) {
                insert_log(
                    &mut tx,
                    &r.task_id,
                    r.attempt,
                    &line.stream,
                    &line.text,
                    line.at,
                )
                .await?;
            }
            if let Some(marker) = &plan.marker {
                insert_log(&mut tx, &r.task_id, r.attempt, "runner", marker, logs.now).await?;
            }
            sqlx::query("UPDATE tasks SET log_bytes = $2 WHERE id = $1")
                .bind(r.task_id.as_str())
                .bind(plan.new_log_bytes)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
            Ok::<_, StoreError>(plan.outcome())
        }
        .await;
        finish(tx, outcome).await
    }

    async fn task_logs(
        &self,
        id: &TaskId,
        after_seq: i64,
        limit: u32,
    ) -> StoreResult<Vec<LogLine>> {
        let rows: Vec<LogLineRow> = sqlx::query_as(
            "SELECT seq, attempt, stream, text, at FROM task_logs \
             WHERE task_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(id.as_str())
        .bind(after_seq)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        convert_all(rows)
    }

    async fn submit_result(&self, r: &TaskRef, result: TaskResult) -> StoreResult<SubmitOutcome> {
        let digest = result.digest();
        let mut tx = self.begin().await?;
        let outcome = async {
        let task = load_task(&mut tx, &r.task_id).await?;
        let previous: Option<(String, Option<String>)> = sqlx::query_as(
            "SELECT runner_id, result_digest FROM task_attempts WHERE task_id = $1 AND attempt = $2 \
             FOR UPDATE",
        )
        .bind(r.task_id.as_str())
        .bind(i64::from(r.attempt.0))
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        if let Some((runner, Some(prev_digest))) = previous {
            if runner == r.runner_id.as_str() && prev_digest == digest {
                return Ok(SubmitOutcome {
                    task,
                    duplicate: true,
                });
            }
            if runner == r.runner_id.as_str() {
                return Err(StoreError::Conflict(format!(
                    "attempt {} already reported a different result",
                    r.attempt
                )));
            }
        }
        check_task_ref(&task, r)?;
        let t = policy::on_result(&task, &result);
        close_attempt(
            &mut tx,
            &task.id,
            task.attempt,
            t.attempt_outcome,
            result.reason.as_deref(),
            Some(&digest),
            result.now,
        )
        .await?;
        let task = apply_transition(
            &mut tx,
            &task,
            &t,
            result.output.as_ref(),
            result.requeue_expires_at,
            result.now,
        )
        .await?;
        Ok::<_, StoreError>(SubmitOutcome {
            task,
            duplicate: false,
        })
        }
        .await;
        finish(tx, outcome).await
    }

    async fn cancel_task(&self, id: &TaskId, now: Timestamp) -> StoreResult<Task> {
        let mut tx = self.begin().await?;
        let outcome = async {
        let task = load_task(&mut tx, id).await?;
        let updated = match task.state {
            s if s.is_terminal() => {
                return Err(StoreError::Conflict(format!(
                    "the task already ended ({s}); nothing to cancel"
                )));
            }
            TaskState::Pending => {
                let row: TaskRow = sqlx::query_as(concat!(
                    "UPDATE tasks SET state = 'cancelled', failure_reason = 'cancelled by user', \
                     updated_at = $2, finished_at = $2 WHERE id = $1 RETURNING ",
                    task_columns!()
                ))
                .bind(id.as_str())
                .bind(now.as_millis())
                .fetch_one(&mut *tx)
                .await
                .map_err(db_error)?;
                event(
                    &mut tx,
                    id,
                    task.attempt,
                    "cancelled",
                    "before any runner claimed it",
                    now,
                )
                .await?;
                set_review_status(&mut tx, &task.review_id, TaskState::Cancelled, now).await?;
                row
            }
            _ => {
                let row: TaskRow = sqlx::query_as(concat!(
                    "UPDATE tasks SET cancel_requested = TRUE, updated_at = $2 WHERE id = $1 RETURNING ",
                    task_columns!()
                ))
                .bind(id.as_str())
                .bind(now.as_millis())
                .fetch_one(&mut *tx)
                .await
                .map_err(db_error)?;
                if !task.cancel_requested {
                    let holder = task.runner_id.as_ref().map(RunnerId::as_str).unwrap_or("");
                    event(&mut tx, id, task.attempt, "cancel_requested", holder, now).await?;
                }
                row
            }
        };
        updated.try_into()
        }
        .await;
        finish(tx, outcome).await
    }

    async fn reap_expired_leases(
        &self,
        now: Timestamp,
        requeue_expires_at: Timestamp,
    ) -> StoreResult<ReapReport> {
        let mut tx = self.begin().await?;
        let outcome = async {
            let rows: Vec<TaskRow> = sqlx::query_as(concat!(
                "SELECT ",
                task_columns!(),
                " FROM tasks WHERE state IN ('picked_up', 'executing') AND lease_expires_at < $1 \
                 FOR UPDATE SKIP LOCKED"
            ))
            .bind(now.as_millis())
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error)?;
            let mut report = ReapReport::default();
            for task in convert_all::<_, Task>(rows)? {
                let t = policy::on_lease_expired(&task);
                event(&mut tx, &task.id, task.attempt, "lease_expired", "", now).await?;
                close_attempt(
                    &mut tx,
                    &task.id,
                    task.attempt,
                    t.attempt_outcome,
                    None,
                    None,
                    now,
                )
                .await?;
                apply_transition(&mut tx, &task, &t, None, requeue_expires_at, now).await?;
                match t.state {
                    TaskState::Pending => report.requeued.push(task.id),
                    TaskState::Cancelled => report.cancelled.push(task.id),
                    _ => report.failed.push(task.id),
                }
            }
            Ok::<_, StoreError>(report)
        }
        .await;
        finish(tx, outcome).await
    }

    async fn expire_unclaimed(&self, now: Timestamp) -> StoreResult<Vec<TaskId>> {
        let mut tx = self.begin().await?;
        let outcome = async {
            let rows: Vec<TaskRow> = sqlx::query_as(concat!(
                "SELECT ",
                task_columns!(),
                " FROM tasks WHERE state = 'pending' AND expires_at <= $1 FOR UPDATE SKIP LOCKED"
            ))
            .bind(now.as_millis())
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error)?;
            let mut ids = Vec::new();
            for task in convert_all::<_, Task>(rows)? {
                let reason = policy::expiry_reason(&task);
                sqlx::query(
                    "UPDATE tasks SET state = 'expired', failure_reason = $2, updated_at = $3, \
                     finished_at = $3 WHERE id = $1",
                )
                .bind(task.id.as_str())
                .bind(&reason)
                .bind(now.as_millis())
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
                event(&mut tx, &task.id, task.attempt, "expired", &reason, now).await?;
                set_review_status(&mut tx, &task.review_id, TaskState::Expired, now).await?;
                ids.push(task.id);
            }
            Ok::<_, StoreError>(ids)
        }
        .await;
        finish(tx, outcome).await
    }

    async fn task_events(&self, id: &TaskId) -> StoreResult<Vec<TaskEvent>> {
        find_task_events(&mut *self.read().await?, id).await
    }

    async fn task_attempts(&self, id: &TaskId) -> StoreResult<Vec<TaskAttempt>> {
        find_task_attempts(&mut *self.read().await?, id).await
    }

    async fn queue_counts(&self) -> StoreResult<Vec<(TaskState, u64)>> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, COUNT(*) FROM tasks GROUP BY state ORDER BY state")
                .fetch_all(&self.pool)
                .await
                .map_err(db_error)?;
        rows.into_iter()
            .map(|(s, n)| {
                TaskState::parse(&s)
                    .map(|s| (s, n.unsigned_abs()))
                    .map_err(|e| StoreError::Corrupt(e.to_string()))
            })
            .collect()
    }

    async fn list_tasks(&self, states: &[TaskState], limit: u32) -> StoreResult<Vec<Task>> {
        if states.is_empty() {
            return Ok(Vec::new());
        }
        let states: Vec<&str> = states.iter().map(|s| s.as_str()).collect();
        let rows: Vec<TaskRow> = sqlx::query_as(concat!(
            "SELECT ",
            task_columns!(),
            " FROM tasks WHERE state = ANY($1) ORDER BY created_at, id LIMIT $2"
        ))
        .bind(states)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        convert_all(rows)
    }

    async fn task_timings(&self, since: Timestamp, limit: u32) -> StoreResult<Vec<TaskTiming>> {
        let rows: Vec<(String, String, i64, Option<i64>, Option<i64>)> = sqlx::query_as(
            "SELECT t.id, t.state, t.created_at, \
             (SELECT MIN(a.claimed_at) FROM task_attempts a WHERE a.task_id = t.id), \
             t.finished_at FROM tasks t WHERE t.created_at >= $1 \
             ORDER BY t.created_at DESC, t.id DESC LIMIT $2",
        )
        .bind(since.as_millis())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.into_iter()
            .map(|(id, state, created_at, started_at, finished_at)| {
                Ok(TaskTiming {
                    task_id: TaskId::parse(&id).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    state: TaskState::parse(&state)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    created_at: Timestamp::from_millis(created_at),
                    started_at: started_at.map(Timestamp::from_millis),
                    finished_at: finished_at.map(Timestamp::from_millis),
                })
            })
            .collect()
    }

    async fn create_config_item(&self, c: ConfigItemWrite) -> StoreResult<ConfigItem> {
        let mut tx = self.begin().await?;
        let outcome = async {
            if c.is_default {
                sqlx::query(
                    "UPDATE config_items SET is_default = FALSE WHERE kind = $1 AND is_default",
                )
                .bind(c.kind.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
            }
            let row: ConfigItemRow = sqlx::query_as(concat!(
            "INSERT INTO config_items (kind, id, name, is_default, body, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING ",
            config_item_columns!()
        ))
        .bind(c.kind.as_str())
        .bind(c.id.as_str())
        .bind(&c.name)
        .bind(c.is_default)
        .bind(c.body.to_string())
        .bind(c.now.as_millis())
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error)?;
            ConfigItem::try_from(row)
        }
        .await;
        finish(tx, outcome).await
    }

    async fn update_config_item(&self, c: ConfigItemWrite) -> StoreResult<ConfigItem> {
        let mut tx = self.begin().await?;
        let outcome = async {
        if c.is_default {
            sqlx::query(
                "UPDATE config_items SET is_default = FALSE WHERE kind = $1 AND is_default AND id <> $2",
            )
            .bind(c.kind.as_str())
            .bind(c.id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        }
        let row: Option<ConfigItemRow> = sqlx::query_as(concat!(
            "UPDATE config_items SET name = $3, is_default = $4, body = $5, updated_at = $6 \
             WHERE kind = $1 AND id = $2 RETURNING ",
            config_item_columns!()
        ))
        .bind(c.kind.as_str())
        .bind(c.id.as_str())
        .bind(&c.name)
        .bind(c.is_default)
        .bind(c.body.to_string())
        .bind(c.now.as_millis())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        let row = row.ok_or_else(|| StoreError::NotFound {
            entity: "config item",
            id: c.id.to_string(),
        })?;
        ConfigItem::try_from(row)
        }
        .await;
        finish(tx, outcome).await
    }

    async fn get_config_item(
        &self,
        kind: ConfigKind,
        id: &ConfigId,
    ) -> StoreResult<Option<ConfigItem>> {
        let row: Option<ConfigItemRow> = sqlx::query_as(concat!(
            "SELECT ",
            config_item_columns!(),
            " FROM config_items WHERE kind = $1 AND id = $2"
        ))
        .bind(kind.as_str())
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.map(ConfigItem::try_from).transpose()
    }

    async fn default_config_item(&self, kind: ConfigKind) -> StoreResult<Option<ConfigItem>> {
        let row: Option<ConfigItemRow> = sqlx::query_as(concat!(
            "SELECT ",
            config_item_columns!(),
            " FROM config_items WHERE kind = $1 AND is_default"
        ))
        .bind(kind.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.map(ConfigItem::try_from).transpose()
    }

    async fn list_config_items(&self, kind: ConfigKind) -> StoreResult<Vec<ConfigItem>> {
        let rows: Vec<ConfigItemRow> = sqlx::query_as(concat!(
            "SELECT ",
            config_item_columns!(),
            " FROM config_items WHERE kind = $1 ORDER BY name"
        ))
        .bind(kind.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        convert_all(rows)
    }

    async fn delete_config_item(&self, kind: ConfigKind, id: &ConfigId) -> StoreResult<()> {
        let done = sqlx::query("DELETE FROM config_items WHERE kind = $1 AND id = $2")
            .bind(kind.as_str())
            .bind(id.as_str())
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                entity: "config item",
                id: id.to_string(),
            });
        }
        Ok(())
    }

    async fn upsert_project(&self, p: ProjectUpsert) -> StoreResult<(Project, bool)> {
        let row: ProjectRow = sqlx::query_as(concat!(
            "INSERT INTO projects (id, platform_config_id, platform_type, external_id, path, name, \
             web_url, clone_url, default_branch, enabled, settings, webhook_status, created_at, \
             updated_at, synced_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, '{}', 'unknown', $11, $11, $11) \
             ON CONFLICT (platform_config_id, external_id) DO UPDATE SET platform_type = excluded.platform_type, \
             path = excluded.path, name = excluded.name, web_url = excluded.web_url, \
             clone_url = excluded.clone_url, default_branch = excluded.default_branch, \
             updated_at = excluded.updated_at, synced_at = excluded.synced_at RETURNING ",
            project_columns!()
        ))
        .bind(p.id.as_str())
        .bind(p.platform_config_id.as_str())
        .bind(p.platform_type.as_str())
        .bind(&p.external_id)
        .bind(&p.path)
        .bind(&p.name)
        .bind(&p.web_url)
        .bind(&p.clone_url)
        .bind(p.default_branch.as_deref())
        .bind(p.enabled_if_new)
        .bind(p.now.as_millis())
        .fetch_one(&self.pool)
        .await
        .map_err(db_error)?;
        let created = row.id == p.id.as_str();
        Ok((Project::try_from(row)?, created))
    }

    async fn get_project(&self, id: &ProjectId) -> StoreResult<Option<Project>> {
        let row: Option<ProjectRow> = sqlx::query_as(concat!(
            "SELECT ",
            project_columns!(),
            " FROM projects WHERE id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.map(Project::try_from).transpose()
    }

    async fn project_by_external_id(
        &self,
        platform_config_id: &ConfigId,
        external_id: &str,
    ) -> StoreResult<Option<Project>> {
        let row: Option<ProjectRow> = sqlx::query_as(concat!(
            "SELECT ",
            project_columns!(),
            " FROM projects WHERE platform_config_id = $1 AND external_id = $2"
        ))
        .bind(platform_config_id.as_str())
        .bind(external_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.map(Project::try_from).transpose()
    }

    async fn list_projects(&self, f: &ProjectFilter) -> StoreResult<(Vec<Project>, u64)> {
        let search = f.search.as_deref().map(like_pattern);
        let platform = f.platform_type.map(PlatformType::as_str);
        let config = f.platform_config_id.as_ref().map(ConfigId::as_str);
        let hook = f.webhook_status.map(WebhookStatus::as_str);
        let rows: Vec<ProjectRow> = sqlx::query_as(concat!(
            "SELECT ",
            project_columns!(),
            " FROM projects WHERE ($1::text IS NULL OR lower(path) LIKE $1 ESCAPE '\\' OR lower(name) LIKE $1 ESCAPE '\\') AND ($2::text IS NULL OR platform_type = $2) AND ($3::text IS NULL OR platform_config_id = $3) AND ($4::boolean IS NULL OR enabled = $4) AND ($5::text IS NULL OR webhook_status = $5) ORDER BY path, id LIMIT $6 OFFSET $7"
        ))
        .bind(search.as_deref())
        .bind(platform)
        .bind(config)
        .bind(f.enabled)
        .bind(hook)
        .bind(i64::from(f.limit))
        .bind(i64::try_from(f.offset).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM projects WHERE ($1::text IS NULL OR lower(path) LIKE $1 ESCAPE '\\' OR lower(name) LIKE $1 ESCAPE '\\') AND ($2::text IS NULL OR platform_type = $2) AND ($3::text IS NULL OR platform_config_id = $3) AND ($4::boolean IS NULL OR enabled = $4) AND ($5::text IS NULL OR webhook_status = $5)")
            .bind(search.as_deref())
            .bind(platform)
            .bind(config)
            .bind(f.enabled)
            .bind(hook)
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)?;
        Ok((convert_all(rows)?, total.unsigned_abs()))
    }

    async fn update_project(
        &self,
        id: &ProjectId,
        enabled: bool,
        settings: serde_json::Value,
        now: Timestamp,
    ) -> StoreResult<Project> {
        let row: Option<ProjectRow> = sqlx::query_as(concat!(
            "UPDATE projects SET enabled = $2, settings = $3, updated_at = $4 WHERE id = $1 RETURNING ",
            project_columns!()
        ))
        .bind(id.as_str())
        .bind(enabled)
        .bind(settings.to_string())
        .bind(now.as_millis())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        let row = row.ok_or_else(|| StoreError::NotFound {
            entity: "project",
            id: id.to_string(),
        })?;
        Project::try_from(row)
    }

    async fn set_webhook_status(
        &self,
        id: &ProjectId,
        status: WebhookStatus,
        now: Timestamp,
    ) -> StoreResult<()> {
        let done =
            sqlx::query("UPDATE projects SET webhook_status = $2, updated_at = $3 WHERE id = $1")
                .bind(id.as_str())
                .bind(status.as_str())
                .bind(now.as_millis())
                .execute(&self.pool)
                .await
                .map_err(db_error)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                entity: "project",
                id: id.to_string(),
            });
        }
        Ok(())
    }

    async fn project_stats(&self) -> StoreResult<ProjectStats> {
        let rows: Vec<(String, String, bool, i64)> = sqlx::query_as(
            "SELECT platform_type, webhook_status, enabled, COUNT(*) FROM projects \
             GROUP BY platform_type, webhook_status, enabled",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        policy::project_stats(rows)
    }

    async fn record_webhook_event(&self, e: WebhookEvent) -> StoreResult<Option<WebhookEvent>> {
        let row: Option<WebhookEventRow> = sqlx::query_as(concat!(
            "INSERT INTO webhook_events (id, platform, delivery_id, event, platform_config_id, \
             project_external_id, change_number, outcome, reason, review_id, received_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) \
             ON CONFLICT (platform, delivery_id) DO NOTHING RETURNING ",
            webhook_event_columns!()
        ))
        .bind(&e.id)
        .bind(e.platform.as_str())
        .bind(e.delivery_id.as_deref())
        .bind(&e.event)
        .bind(e.platform_config_id.as_ref().map(ConfigId::as_str))
        .bind(e.project_external_id.as_deref())
        .bind(e.change_number.map(|n| i64::try_from(n).unwrap_or(i64::MAX)))
        .bind(&e.outcome)
        .bind(e.reason.as_deref())
        .bind(e.review_id.as_ref().map(ReviewId::as_str))
        .bind(e.received_at.as_millis())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.map(WebhookEvent::try_from).transpose()
    }

    async fn finish_webhook_event(
        &self,
        id: &str,
        outcome: &str,
        reason: Option<&str>,
        review_id: Option<&ReviewId>,
        now: Timestamp,
    ) -> StoreResult<WebhookEvent> {
        let row: Option<WebhookEventRow> = sqlx::query_as(concat!(
            "UPDATE webhook_events SET outcome = $2, reason = $3, review_id = $4, updated_at = $5, \
             delivery_id = CASE WHEN $2 = 'failed' THEN NULL ELSE delivery_id END \
             WHERE id = $1 RETURNING ",
            webhook_event_columns!()
        ))
        .bind(id)
        .bind(outcome)
        .bind(reason)
        .bind(review_id.map(ReviewId::as_str))
        .bind(now.as_millis())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        let row = row.ok_or_else(|| StoreError::NotFound {
            entity: "webhook event",
            id: id.to_owned(),
        })?;
        WebhookEvent::try_from(row)
    }

    async fn list_webhook_events(
        &self,
        f: &WebhookEventFilter,
    ) -> StoreResult<(Vec<WebhookEvent>, u64)> {
        let platform = f.platform.map(PlatformType::as_str);
        let rows: Vec<WebhookEventRow> = sqlx::query_as(concat!(
            "SELECT ",
            webhook_event_columns!(),
            " FROM webhook_events WHERE ($1::text IS NULL OR platform = $1) AND ($2::text IS NULL OR outcome = $2) ORDER BY received_at DESC, id DESC LIMIT $3 OFFSET $4"
        ))
        .bind(platform)
        .bind(f.outcome.as_deref())
        .bind(i64::from(f.limit))
        .bind(i64::try_from(f.offset).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhook_events WHERE ($1::text IS NULL OR platform = $1) AND ($2::text IS NULL OR outcome = $2)")
            .bind(platform)
            .bind(f.outcome.as_deref())
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)?;
        Ok((convert_all(rows)?, total.unsigned_abs()))
    }

    async fn claim_pushbacks(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<PushJob>> {
        let rows: Vec<PushJobRow> = sqlx::query_as(concat!(
            "UPDATE reviews SET push_lease_until = $2, push_attempts = push_attempts + 1 \
             WHERE id IN (SELECT id FROM reviews WHERE push_state = 'pending' \
               AND status IN ('completed', 'failed') AND push_next_at <= $1 \
               AND (push_lease_until IS NULL OR push_lease_until < $1) \
               ORDER BY push_next_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) RETURNING ",
            review_columns!(),
            ", push_attempts"
        ))
        .bind(now.as_millis())
        .bind(lease_until.as_millis())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        convert_all(rows)
    }

    async fn finish_pushback(
        &self,
        review: &ReviewId,
        state: &str,
        error: Option<&str>,
        retry_at: Option<Timestamp>,
        now: Timestamp,
    ) -> StoreResult<()> {
        let done = sqlx::query(
            "UPDATE reviews SET push_state = $2, push_error = $3, \
             push_next_at = COALESCE($4::bigint, push_next_at), push_lease_until = NULL, updated_at = $5 \
             WHERE id = $1",
        )
        .bind(review.as_str())
        .bind(state)
        .bind(error)
        .bind(retry_at.map(Timestamp::as_millis))
        .bind(now.as_millis())
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                entity: "review",
                id: review.to_string(),
            });
        }
        Ok(())
    }

    async fn push_state(&self, review: &ReviewId) -> StoreResult<PushState> {
        find_push_state(&mut *self.read().await?, review)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                entity: "review",
                id: review.to_string(),
            })
    }

    async fn change_thread(&self, project: &ProjectId, number: u64) -> StoreResult<ChangeThread> {
        let row: Option<(Option<String>, String)> = sqlx::query_as(
            "SELECT summary_comment_id, posted_fingerprints FROM change_threads \
             WHERE project_id = $1 AND change_number = $2",
        )
        .bind(project.as_str())
        .bind(i64::try_from(number).unwrap_or(i64::MAX))
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        match row {
            None => Ok(ChangeThread::default()),
            Some((summary_comment_id, fps)) => Ok(ChangeThread {
                summary_comment_id,
                posted_fingerprints: serde_json::from_str(&fps)
                    .map_err(|e| StoreError::Corrupt(format!("posted fingerprints: {e}")))?,
            }),
        }
    }

    async fn save_change_thread(
        &self,
        project: &ProjectId,
        number: u64,
        thread: &ChangeThread,
        now: Timestamp,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO change_threads (project_id, change_number, summary_comment_id, posted_fingerprints, updated_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (project_id, change_number) DO UPDATE SET \
             summary_comment_id = excluded.summary_comment_id, posted_fingerprints = excluded.posted_fingerprints, \
             updated_at = excluded.updated_at",
        )
        .bind(project.as_str())
        .bind(i64::try_from(number).unwrap_or(i64::MAX))
        .bind(thread.summary_comment_id.as_deref())
        .bind(serde_json::to_string(&thread.posted_fingerprints).unwrap_or_else(|_| "[]".into()))
        .bind(now.as_millis())
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn enqueue_notifications(
        &self,
        items: Vec<NewNotification>,
    ) -> StoreResult<Vec<Notification>> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin().await?;
        let outcome = async {
            let mut queued = Vec::with_capacity(items.len());
            // A replica inserting a key another replica's open transaction
            // has just inserted waits for that transaction, then skips the
            // key once it commits (or inserts it if it rolls back).
            for (position, n) in policy::notification_insert_order(&items) {
                let row: Option<NotificationRow> = sqlx::query_as(concat!(
                    "INSERT INTO notifications (id, event, channel, review_id, dedup_key, payload, \
                     status, attempts, next_attempt_at, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7, $7) \
                     ON CONFLICT (dedup_key) DO NOTHING RETURNING ",
                    notification_columns!()
                ))
                .bind(n.id.as_str())
                .bind(n.event.as_str())
                .bind(n.channel.as_str())
                .bind(n.review_id.as_ref().map(ReviewId::as_str))
                .bind(&n.dedup_key)
                .bind(n.payload.to_string())
                .bind(n.now.as_millis())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error)?;
                if let Some(row) = row {
                    queued.push((position, Notification::try_from(row)?));
                }
            }
            queued.sort_by_key(|(position, _)| *position);
            Ok::<_, StoreError>(queued.into_iter().map(|(_, n)| n).collect())
        }
        .await;
        finish(tx, outcome).await
    }

    async fn claim_notifications(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<Notification>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let rows: Vec<NotificationRow> = sqlx::query_as(concat!(
            "UPDATE notifications SET lease_until = $2, attempts = attempts + 1, updated_at = $1 \
             WHERE id IN (SELECT id FROM notifications WHERE status = 'pending' \
               AND next_attempt_at <= $1 AND (lease_until IS NULL OR lease_until <= $1) \
               ORDER BY created_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) RETURNING ",
            notification_columns!()
        ))
        .bind(now.as_millis())
        .bind(lease_until.as_millis())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        let mut claimed: Vec<Notification> = convert_all(rows)?;
        // RETURNING follows no ORDER BY; restore the claim order.
        claimed.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(claimed)
    }

    async fn finish_notification(
        &self,
        id: &NotificationId,
        outcome: NotificationOutcome,
        now: Timestamp,
    ) -> StoreResult<Notification> {
        let f = policy::on_notification_outcome(outcome, now);
        let row: Option<NotificationRow> = sqlx::query_as(concat!(
            "UPDATE notifications SET status = $2, \
             next_attempt_at = COALESCE($3::bigint, next_attempt_at), \
             last_error = $4, sent_at = $5, lease_until = NULL, updated_at = $6 \
             WHERE id = $1 AND status = 'pending' RETURNING ",
            notification_columns!()
        ))
        .bind(id.as_str())
        .bind(f.status.as_str())
        .bind(f.next_attempt_at.map(Timestamp::as_millis))
        .bind(f.last_error.as_deref())
        .bind(f.sent_at.map(Timestamp::as_millis))
        .bind(now.as_millis())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        if let Some(row) = row {
            return Notification::try_from(row);
        }
        // Nothing pending with this id: tell a missing one from a final one.
        // Final statuses never change, so this read cannot race the update.
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM notifications WHERE id = $1")
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(db_error)?;
        Err(policy::notification_not_pending(id, status))
    }

    async fn get_notification(&self, id: &NotificationId) -> StoreResult<Option<Notification>> {
        let row: Option<NotificationRow> = sqlx::query_as(concat!(
            "SELECT ",
            notification_columns!(),
            " FROM notifications WHERE id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.map(Notification::try_from).transpose()
    }

    async fn list_notifications(
        &self,
        f: &NotificationFilter,
    ) -> StoreResult<(Vec<Notification>, u64)> {
        let p = NotificationFilterParams::from(f);
        let rows: Vec<NotificationRow> = sqlx::query_as(concat!(
            "SELECT ",
            notification_columns!(),
            " FROM notifications WHERE ",
            notification_filter!(),
            " ORDER BY created_at DESC, id DESC LIMIT $7 OFFSET $8"
        ))
        .bind(p.channel)
        .bind(p.status)
        .bind(p.event)
        .bind(p.review_id)
        .bind(p.start)
        .bind(p.end)
        .bind(i64::from(f.limit))
        .bind(i64::try_from(f.offset).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        let total: i64 = sqlx::query_scalar(concat!(
            "SELECT COUNT(*) FROM notifications WHERE ",
            notification_filter!()
        ))
        .bind(p.channel)
        .bind(p.status)
        .bind(p.event)
        .bind(p.review_id)
        .bind(p.start)
        .bind(p.end)
        .fetch_one(&self.pool)
        .await
        .map_err(db_error)?;
        Ok((convert_all(rows)?, total.unsigned_abs()))
    }

    async fn notification_stats(
        &self,
        start: Option<Timestamp>,
        end: Option<Timestamp>,
    ) -> StoreResult<NotificationStats> {
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT channel, status, COUNT(*) FROM notifications \
             WHERE ($1::bigint IS NULL OR created_at >= $1) \
             AND ($2::bigint IS NULL OR created_at < $2) \
             GROUP BY channel, status",
        )
        .bind(start.map(Timestamp::as_millis))
        .bind(end.map(Timestamp::as_millis))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        policy::notification_stats(rows)
    }

    async fn save_push_subscription(
        &self,
        new: NewPushSubscription,
    ) -> StoreResult<PushSubscription> {
        let row: PushSubscriptionRow = sqlx::query_as(concat!(
            "INSERT INTO push_subscriptions (id, user_id, endpoint, p256dh, auth, user_agent, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
             ON CONFLICT (endpoint) DO UPDATE SET user_id = excluded.user_id, \
             p256dh = excluded.p256dh, auth = excluded.auth, user_agent = excluded.user_agent, \
             updated_at = excluded.updated_at RETURNING ",
            push_subscription_columns!()
        ))
        .bind(new.id.as_str())
        .bind(new.user_id.as_ref().map(UserId::as_str))
        .bind(&new.endpoint)
        .bind(&new.p256dh)
        .bind(&new.auth)
        .bind(new.user_agent.as_deref())
        .bind(new.now.as_millis())
        .fetch_one(&self.pool)
        .await
        .map_err(db_error)?;
        PushSubscription::try_from(row)
    }

    async fn get_push_subscription(
        &self,
        id: &PushSubscriptionId,
    ) -> StoreResult<Option<PushSubscription>> {
        let row: Option<PushSubscriptionRow> = sqlx::query_as(concat!(
            "SELECT ",
            push_subscription_columns!(),
            " FROM push_subscriptions WHERE id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.map(PushSubscription::try_from).transpose()
    }

    async fn list_push_subscriptions(
        &self,
        user: Option<&UserId>,
    ) -> StoreResult<Vec<PushSubscription>> {
        let rows: Vec<PushSubscriptionRow> = sqlx::query_as(concat!(
            "SELECT ",
            push_subscription_columns!(),
            " FROM push_subscriptions WHERE ($1::text IS NULL OR user_id = $1) \
             ORDER BY created_at, id"
        ))
        .bind(user.map(UserId::as_str))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        convert_all(rows)
    }

    async fn delete_push_subscription(&self, id: &PushSubscriptionId) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM push_subscriptions WHERE id = $1")
            .bind(id.as_str())
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_all_push_subscriptions(&self) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM push_subscriptions")
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected())
    }

    async fn try_start_periodic(
        &self,
        job: &str,
        now: Timestamp,
        period_ms: i64,
    ) -> StoreResult<bool> {
        // Racing inserts of a new job meet on the primary key and racing
        // updates on the row lock; either way the loser re-checks the WHERE
        // against the winner's row, so exactly one caller per period
        // returns a row.
        let started: Option<i64> = sqlx::query_scalar(
            "INSERT INTO periodic_jobs AS j (name, last_started_at, runs) VALUES ($1, $2, 1) \
             ON CONFLICT (name) DO UPDATE SET last_started_at = EXCLUDED.last_started_at, \
             runs = j.runs + 1 \
             WHERE j.last_started_at <= $3 \
             RETURNING runs",
        )
        .bind(job)
        .bind(now.as_millis())
        .bind(now.as_millis().saturating_sub(period_ms))
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(started.is_some())
    }

    async fn periodic_runs(&self, job: &str) -> StoreResult<u64> {
        let runs: Option<i64> =
            sqlx::query_scalar("SELECT runs FROM periodic_jobs WHERE name = $1")
                .bind(job)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_error)?;
        Ok(runs.map_or(0, |r| u64::try_from(r).unwrap_or(0)))
    }

    async fn hit_rate_limit(
        &self,
        key: &RateLimitKey,
        now: Timestamp,
        window_ms: i64,
    ) -> StoreResult<RateLimitWindow> {
        let window = RateLimitWindow::containing(now, window_ms);
        // Racing inserts of a new window meet on the primary key and racing
        // increments on the row lock; the loser adds to the winner's row,
        // so every hit counts once and reads back its own count.
        let hits: i64 = sqlx::query_scalar(
            "INSERT INTO rate_limit_windows AS w (key_digest, window_start, expires_at, hits) \
             VALUES ($1, $2, $3, 1) \
             ON CONFLICT (key_digest, window_start) DO UPDATE SET hits = w.hits + 1 \
             RETURNING hits",
        )
        .bind(key.as_str())
        .bind(window.start.as_millis())
        .bind(window.kept_until().as_millis())
        .fetch_one(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(RateLimitWindow {
            hits: u64::try_from(hits).unwrap_or(0),
            ..window
        })
    }

    async fn delete_expired_rate_limit_windows(&self, now: Timestamp) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM rate_limit_windows WHERE expires_at <= $1")
            .bind(now.as_millis())
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected())
    }

    async fn announce_tasks(&self) -> StoreResult<()> {
        // On a pool connection in autocommit, so it is delivered at once
        // (a NOTIFY inside a transaction waits for its commit).
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(TASKS_CHANNEL)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn task_announcements(&self) -> StoreResult<Option<TaskAnnouncements>> {
        // A pool of one connection of its own: the listener holds it for
        // good, and `PgListener` reconnects through it.
        let listen_pool = PgPoolOptions::new()
            .max_connections(1)
            .max_lifetime(None)
            .idle_timeout(None)
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy_with(self.options.clone());
        // Listening before returning: announcements made from now on are
        // received.
        let listener = match listen(&listen_pool).await {
            Ok(l) => l,
            Err(e) => {
                listen_pool.close().await;
                return Err(db_error(e));
            }
        };
        let (tx, rx) = TaskAnnouncements::channel();
        tokio::spawn(relay_announcements(
            listen_pool,
            listener,
            tx,
            self.pool.close_event(),
        ));
        Ok(Some(rx))
    }
}

async fn insert_log(
    c: &mut PgConnection,
    task: &TaskId,
    attempt: Attempt,
    stream: &str,
    text: &str,
    at: Timestamp,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO task_logs (task_id, attempt, stream, text, at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(task.as_str())
    .bind(i64::from(attempt.0))
    .bind(stream)
    .bind(text)
    .bind(at.as_millis())
    .execute(&mut *c)
    .await
    .map_err(db_error)?;
    Ok(())
}
