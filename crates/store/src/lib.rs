//! The storage interface of ai-review.
//!
//! The server talks to its database only through [`Store`]. Two backends
//! implement it: `ai-review-store-sqlite` (the embedded default) and
//! `ai-review-store-postgres` (the scale-out store shared by several server
//! replicas). Both must pass the same [`conformance`] suite; a behaviour
//! that is not in the suite is not part of the contract.
//!
//! # Time
//!
//! No method reads the clock. Every method that needs "now" takes it as a
//! [`Timestamp`] argument, so the server can run on a manual clock in tests
//! and the conformance suite can move time forward without sleeping.
//!
//! # The task queue
//!
//! Tasks move `pending → picked_up → executing → completed | failed`, and may
//! end `cancelled` or `expired`. A claim ([`Store::claim_tasks`]) gives a
//! runner a lease until a deadline and increments the task's attempt number,
//! which is the fencing value: every later call for that task
//! ([`Store::report_phase`], [`Store::append_logs`], [`Store::submit_result`])
//! presents a [`TaskRef`] with the runner id and attempt, and is refused with
//! [`StoreError::StaleAttempt`] when a newer claim exists, so a runner that
//! lost its lease can never overwrite a newer attempt.
//!
//! Leases are renewed by heartbeats ([`Store::heartbeat`]) and by phase
//! reports. [`Store::reap_expired_leases`] returns tasks whose lease ran out
//! to `pending` (or fails them once `max_attempts` claims have been used),
//! [`Store::expire_unclaimed`] ends pending tasks nobody claimed in time.
//!
//! Backends guarantee that two concurrent claims never return the same task
//! (SQLite: one writer connection and a single `UPDATE … RETURNING`;
//! PostgreSQL: `FOR UPDATE SKIP LOCKED`).
//!
//! # Snapshot reads
//!
//! A method that returns several related rows reads them in one snapshot
//! ([`Store::review_detail`]: a review with its task, attempts, events and
//! push-back state), so a concurrent commit is seen either entirely or not
//! at all. Separate single-row reads carry no such promise.
//!
//! # Notifications
//!
//! A notification is one event (a review completed, a daily summary…) to
//! deliver through one channel, stored before anything is sent so delivery
//! never blocks a review and survives a restart. The rows are both the
//! delivery queue and the delivery history:
//!
//! - [`Store::enqueue_notifications`] queues them `pending`, due at once.
//!   Each carries a unique deduplication key, and a key already stored is
//!   skipped, so every server replica may enqueue the same event (the
//!   daily summary, say) and it is still queued, and sent, once.
//! - [`Store::claim_notifications`] hands due ones to a sender under a
//!   lease, counting the try, exactly like push-back jobs: a lease that
//!   runs out (the sender died) makes the notification claimable again.
//! - [`Store::finish_notification`] records how the try ended: `sent`,
//!   `failed` with the error, or `pending` again with the error and the
//!   time of the next try (the caller's backoff). `sent` and `failed` are
//!   final.
//!
//! # Push subscriptions
//!
//! A browser that accepts Web Push notifications leaves a subscription: its
//! push service endpoint (unique, the key the subscription is saved under),
//! its public key and its sealed authentication secret, and the user who
//! subscribed. Saving an endpoint again updates it in place
//! ([`Store::save_push_subscription`]), so a browser has one subscription
//! however often it subscribes.
//!
//! # Periodic jobs
//!
//! A job every server replica schedules (a cleanup sweep, a summary) but
//! that must run once per period across them asks
//! [`Store::try_start_periodic`] before running: the store keeps each
//! job's last start in `periodic_jobs`, and one statement
//! (`INSERT … ON CONFLICT (name) DO UPDATE … WHERE … RETURNING`) both
//! checks that a period passed since then and records the new start, so of
//! any number of replicas asking at the same instant exactly one is told to
//! run (PostgreSQL: the row lock the upsert takes; SQLite: the one writer).
//! The period is the caller's; the runs are counted
//! ([`Store::periodic_runs`]) for tests and metrics.
//!
//! # Shared rate limits
//!
//! A limit that must hold across server replicas (the login throttle: an
//! attacker spreading guesses over N replicas must not get N times the
//! guesses) is counted in the store, in fixed windows aligned to multiples
//! of the window's length since the Unix epoch, so every replica computes
//! the same windows. [`Store::hit_rate_limit`] counts one attempt with one
//! statement (`INSERT … ON CONFLICT (key_digest, window_start) DO UPDATE
//! SET hits = hits + 1 RETURNING hits`) and answers the window with its
//! count; the caller compares it with its limit. Keys
//! ([`RateLimitKey`]) are digests, never a raw address, email or
//! credential. A window's row is kept until one more window has passed
//! after its end and [`Store::delete_expired_rate_limit_windows`] (the
//! reaper) deletes it after that.
//!
//! # Task announcements
//!
//! Runners long-poll for tasks. The server wakes the polls it holds when a
//! task is queued in the same process; with several replicas, a task
//! queued through one must also wake the polls held by the others. After
//! the transaction that made tasks claimable has committed, the server
//! calls [`Store::announce_tasks`], and every process listening through
//! [`Store::task_announcements`] receives an item ([`TaskAnnouncements`])
//! and re-checks the queue. PostgreSQL: `pg_notify` on the channel
//! `ai_review_tasks` and a `LISTEN` connection per listener that
//! reconnects with backoff after errors and then yields an extra item
//! (announcements sent while it was disconnected are lost). SQLite: one
//! process only (below), so announcing does nothing and there is nothing to
//! listen to (`None`). Announcements are a latency optimisation: a poll
//! still re-checks the queue periodically, so a lost one delays a claim,
//! never loses a task.
//!
//! # One SQLite process
//!
//! A SQLite database serves one server process: its file-level locking
//! allows one writer, and the process-local wake-ups above would not reach
//! a second process. Opening a file database therefore takes an exclusive,
//! non-blocking lock on a sidecar file `<database path>.lock` (`flock` on
//! Unix) and holds it while the store is open; a second open, from another
//! process or the same one, fails with an error naming the file and
//! pointing at PostgreSQL for several replicas. The lock file itself is left
//! in place (deleting it could let two processes lock two different
//! files); only the lock on it matters. In-memory databases take no lock.

mod announce;
mod error;
mod model;
pub mod policy;

#[cfg(feature = "conformance")]
pub mod conformance;
#[cfg(feature = "sql")]
pub mod rows;

pub use announce::{AnnouncementSender, TaskAnnouncements};
pub use error::StoreError;
pub use model::*;

use ai_review_domain::{
    ApiKeyDigest, ApiKeyId, ConfigId, ConfigKind, Email, NotificationId, ProjectId,
    PushSubscriptionId, ReviewId, ReviewStatus, RunnerId, TaskId, TaskState, Timestamp, UserId,
    WebhookStatus,
};
use async_trait::async_trait;
use std::sync::Arc;

/// Result of a store call.
pub type StoreResult<T> = Result<T, StoreError>;

/// A shared handle to a store backend.
pub type DynStore = Arc<dyn Store>;

/// Everything the server persists. See the crate docs for the queue model.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Which backend this is (`sqlite` or `postgres`), for logs and health.
    fn backend_name(&self) -> &'static str;

    /// Cheap round trip to the database, for `GET /api/health`.
    async fn ping(&self) -> StoreResult<()>;

    /// Closes the connection pools; later calls fail. Used at shutdown.
    async fn close(&self);

    // ----- users and API keys -------------------------------------------

    /// Creates a user. [`StoreError::Conflict`] if the email is taken.
    async fn create_user(&self, user: NewUser) -> StoreResult<User>;

    /// Looks a user up by (normalised) email.
    async fn user_by_email(&self, email: &Email) -> StoreResult<Option<User>>;

    /// Looks a user up by id.
    async fn user_by_id(&self, id: &UserId) -> StoreResult<Option<User>>;

    /// Number of users with the `admin` role.
    async fn count_admins(&self) -> StoreResult<u64>;

    /// Creates `user` as the first admin, atomically: `None` (and nothing
    /// written) if an admin exists already, so two first-run setups racing
    /// cannot both succeed.
    async fn create_first_admin(&self, user: NewUser) -> StoreResult<Option<User>>;

    /// Every user, oldest first.
    async fn list_users(&self) -> StoreResult<Vec<User>>;

    /// Changes a user's role, permissions, disabled flag or password hash
    /// (fields left `None` keep their value). [`StoreError::NotFound`] if
    /// the user does not exist; [`StoreError::Conflict`] if the change
    /// would leave no enabled admin. Disabling a user or changing their
    /// password ends their sessions in the same transaction.
    async fn update_user(&self, update: UserUpdate) -> StoreResult<User>;

    // ----- browser sessions ------------------------------------------------

    /// Stores a new session (its token's digest only).
    async fn create_session(&self, session: NewSession) -> StoreResult<Session>;

    /// The live session with this token digest and its user: `None` when it
    /// is unknown, expired, or its user is disabled.
    async fn session_user(
        &self,
        digest: &ApiKeyDigest,
        now: Timestamp,
    ) -> StoreResult<Option<(Session, User)>>;

    /// Slides a session's expiry forward and records it as seen at `now`.
    async fn extend_session(
        &self,
        digest: &ApiKeyDigest,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> StoreResult<()>;

    /// Ends one session (logout). Unknown digests are not an error.
    async fn delete_session(&self, digest: &ApiKeyDigest) -> StoreResult<()>;

    /// Deletes sessions that expired before `now`; returns how many.
    async fn delete_expired_sessions(&self, now: Timestamp) -> StoreResult<u64>;

    /// Stores a new API key (its digest only).
    async fn create_api_key(&self, key: NewApiKey) -> StoreResult<ApiKey>;

    /// Finds the live key with this digest and its owner. Revoked keys,
    /// expired keys and keys of disabled users are not found.
    async fn authenticate_api_key(
        &self,
        digest: &ApiKeyDigest,
        now: Timestamp,
    ) -> StoreResult<Option<(ApiKey, User)>>;

    /// Records that a key was used (callers throttle this).
    async fn touch_api_key(&self, id: &ApiKeyId, now: Timestamp) -> StoreResult<()>;

    /// A user's keys, newest first, revoked ones included.
    async fn list_api_keys(&self, owner: &UserId) -> StoreResult<Vec<ApiKey>>;

    /// Looks a key up by id.
    async fn api_key_by_id(&self, id: &ApiKeyId) -> StoreResult<Option<ApiKey>>;

    /// Revokes a key (idempotent: revoking a revoked key keeps the first
    /// revocation time). [`StoreError::NotFound`] if no such key.
    async fn revoke_api_key(&self, id: &ApiKeyId, now: Timestamp) -> StoreResult<ApiKey>;

    // ----- runners --------------------------------------------------------

    /// Registers a runner or updates its metadata (upsert by id), marking it
    /// online. [`StoreError::Conflict`] if the id belongs to another user's
    /// runner.
    async fn register_runner(&self, reg: RunnerRegistration) -> StoreResult<Runner>;

    /// One runner.
    async fn get_runner(&self, id: &RunnerId) -> StoreResult<Option<Runner>>;

    /// All runners, most recent heartbeat first.
    async fn list_runners(&self) -> StoreResult<Vec<Runner>>;

    /// Records a heartbeat, renews the leases of every active task the
    /// runner holds until `lease_until`, and returns the ids of its tasks
    /// that a user asked to cancel.
    async fn heartbeat(&self, hb: Heartbeat) -> StoreResult<HeartbeatOutcome>;

    /// Marks runners whose last heartbeat is older than `silent_since` as
    /// offline; returns their ids.
    async fn mark_silent_runners_offline(
        &self,
        silent_since: Timestamp,
        now: Timestamp,
    ) -> StoreResult<Vec<RunnerId>>;

    // ----- reviews and the task queue ---------------------------------------

    /// Creates a review and its pending task atomically.
    async fn enqueue_review(&self, review: NewReview) -> StoreResult<(Review, Task)>;

    /// Queues `review` as the retry of review `of`, in one transaction:
    /// records `review.id` as `of`'s [`Review::retried_as`], but only while
    /// `of` has none, then enqueues `review` exactly as
    /// [`Store::enqueue_review`] does (round numbering and superseding
    /// included).
    ///
    /// This makes retrying idempotent: a review is retried at most once, so
    /// a double-click, or two users pressing "retry" at the same time,
    /// queues one review. Every later retry of `of` is refused with
    /// [`StoreError::Conflict`] naming the review already queued, and
    /// writes nothing. [`StoreError::NotFound`] if `of` does not exist.
    async fn enqueue_retry(&self, of: &ReviewId, review: NewReview) -> StoreResult<(Review, Task)>;

    /// One review.
    async fn get_review(&self, id: &ReviewId) -> StoreResult<Option<Review>>;

    /// A review with its task, the task's attempts and events, and its
    /// push-back state, read in **one snapshot**: `None` if no review has
    /// this id.
    ///
    /// The same data as [`Store::get_review`], [`Store::get_task`],
    /// [`Store::task_attempts`], [`Store::task_events`] and
    /// [`Store::push_state`] together, but those are separate reads, and a
    /// commit landing between two of them (a task finishing, say, which
    /// updates the task and its review in one transaction) would show a
    /// view that never existed: the task `completed` while the review is
    /// still `running`. Here every part comes from the same committed state,
    /// so the review's status always mirrors the task's state.
    ///
    /// PostgreSQL: one `REPEATABLE READ, READ ONLY` transaction. SQLite: one
    /// deferred read transaction on one connection (in WAL mode its snapshot
    /// is fixed by the first read and holds until it ends).
    ///
    /// [`StoreError::Corrupt`] if the review exists but its task does not
    /// (the schema's foreign keys forbid it).
    async fn review_detail(&self, id: &ReviewId) -> StoreResult<Option<ReviewDetail>>;

    /// The reviews with these ids, in the order of `ids`: ids with no review
    /// are skipped, a repeated id yields its review once. No ids, no query.
    async fn get_reviews(&self, ids: &[ReviewId]) -> StoreResult<Vec<Review>>;

    /// Reviews matching a filter, newest first, with the total count.
    async fn list_reviews(&self, filter: &ReviewFilter) -> StoreResult<(Vec<Review>, u64)>;

    /// Number of reviews in each status among those a filter selects,
    /// ignoring its `status`, `limit` and `offset` (statuses with none are
    /// omitted): the counts beside a filtered review list.
    async fn review_status_counts(
        &self,
        filter: &ReviewFilter,
    ) -> StoreResult<Vec<(ReviewStatus, u64)>>;

    /// One task.
    async fn get_task(&self, id: &TaskId) -> StoreResult<Option<Task>>;

    /// The tasks with these ids, in the order of `ids`: ids with no task are
    /// skipped, a repeated id yields its task once. No ids, no query.
    async fn get_tasks(&self, ids: &[TaskId]) -> StoreResult<Vec<Task>>;

    /// Claims up to `limit` pending, unexpired tasks whose required tags the
    /// runner has, oldest first, for `runner_id` with a lease until
    /// `lease_until`. Each claimed task's attempt is incremented.
    async fn claim_tasks(&self, claim: Claim) -> StoreResult<Vec<Task>>;

    /// Records an execution phase (moving `picked_up` to `executing`) and
    /// renews the lease.
    async fn report_phase(&self, task: &TaskRef, report: PhaseReport) -> StoreResult<Task>;

    /// Appends log lines, keeping at most `max_bytes` of log per task; the
    /// rest is dropped and reported as truncated.
    async fn append_logs(&self, task: &TaskRef, logs: LogAppend) -> StoreResult<LogAppendOutcome>;

    /// Log lines of a task with a sequence number above `after_seq`.
    async fn task_logs(&self, id: &TaskId, after_seq: i64, limit: u32)
    -> StoreResult<Vec<LogLine>>;

    /// Ends the runner's attempt with a result. Submitting the same result
    /// for the same attempt again is a no-op reported as a duplicate; a
    /// different result for an attempt that already reported is a
    /// [`StoreError::Conflict`]. A retryable failure with attempts left puts
    /// the task back to `pending`.
    async fn submit_result(&self, task: &TaskRef, result: TaskResult)
    -> StoreResult<SubmitOutcome>;

    /// Cancels a task: a pending task ends `cancelled` at once; an active one
    /// is flagged so its runner learns it from the next heartbeat answer.
    /// [`StoreError::Conflict`] if the task already ended.
    async fn cancel_task(&self, id: &TaskId, now: Timestamp) -> StoreResult<Task>;

    /// Handles every active task whose lease ended before `now`: back to
    /// `pending` (expiring at `requeue_expires_at`) while attempts remain,
    /// otherwise `failed` with a reason; `cancelled` if cancellation had been
    /// asked for.
    async fn reap_expired_leases(
        &self,
        now: Timestamp,
        requeue_expires_at: Timestamp,
    ) -> StoreResult<ReapReport>;

    /// Ends pending tasks whose expiry passed as `expired`.
    async fn expire_unclaimed(&self, now: Timestamp) -> StoreResult<Vec<TaskId>>;

    /// The history of a task (enqueue, claims, phases, lease expiries, result).
    async fn task_events(&self, id: &TaskId) -> StoreResult<Vec<TaskEvent>>;

    /// Every attempt of a task with how it ended.
    async fn task_attempts(&self, id: &TaskId) -> StoreResult<Vec<TaskAttempt>>;

    /// Number of tasks in each state (states with none are omitted).
    async fn queue_counts(&self) -> StoreResult<Vec<(TaskState, u64)>>;

    /// Tasks in any of `states`, oldest first, at most `limit`.
    async fn list_tasks(&self, states: &[TaskState], limit: u32) -> StoreResult<Vec<Task>>;

    /// The timing of every task created at or after `since`, newest first,
    /// at most `limit` (so a cap drops the oldest, never the current ones):
    /// what the dashboard's charts, throughput and failure rate are computed
    /// from.
    async fn task_timings(&self, since: Timestamp, limit: u32) -> StoreResult<Vec<TaskTiming>>;

    // ----- configuration items (AI configs, templates, rules) -------------

    /// Creates a configuration item. [`StoreError::Conflict`] if its name
    /// is taken within the kind. With `is_default`, the previous default of
    /// the kind stops being the default in the same transaction.
    async fn create_config_item(&self, item: ConfigItemWrite) -> StoreResult<ConfigItem>;

    /// Replaces an item's name, default flag and body.
    /// [`StoreError::NotFound`] if it does not exist,
    /// [`StoreError::Conflict`] if the new name is taken.
    async fn update_config_item(&self, item: ConfigItemWrite) -> StoreResult<ConfigItem>;

    /// One item.
    async fn get_config_item(
        &self,
        kind: ConfigKind,
        id: &ConfigId,
    ) -> StoreResult<Option<ConfigItem>>;

    /// The default item of a kind, if one is marked.
    async fn default_config_item(&self, kind: ConfigKind) -> StoreResult<Option<ConfigItem>>;

    /// Every item of a kind, by name.
    async fn list_config_items(&self, kind: ConfigKind) -> StoreResult<Vec<ConfigItem>>;

    /// Deletes an item. [`StoreError::NotFound`] if it does not exist.
    async fn delete_config_item(&self, kind: ConfigKind, id: &ConfigId) -> StoreResult<()>;

    // ----- projects ---------------------------------------------------------

    /// Inserts a project seen by a sync, or refreshes the forge fields of the
    /// one with the same `(platform_config_id, external_id)` (keeping its id,
    /// `enabled` and settings). Returns it and whether it was new.
    async fn upsert_project(&self, p: ProjectUpsert) -> StoreResult<(Project, bool)>;

    /// One project.
    async fn get_project(&self, id: &ProjectId) -> StoreResult<Option<Project>>;

    /// The project with this forge id under this platform config.
    async fn project_by_external_id(
        &self,
        platform_config_id: &ConfigId,
        external_id: &str,
    ) -> StoreResult<Option<Project>>;

    /// Projects matching a filter, by path, with the total count.
    async fn list_projects(&self, filter: &ProjectFilter) -> StoreResult<(Vec<Project>, u64)>;

    /// Replaces a project's `enabled` flag and settings.
    /// [`StoreError::NotFound`] if it does not exist.
    async fn update_project(
        &self,
        id: &ProjectId,
        enabled: bool,
        settings: serde_json::Value,
        now: Timestamp,
    ) -> StoreResult<Project>;

    /// Records the result of a webhook check.
    async fn set_webhook_status(
        &self,
        id: &ProjectId,
        status: WebhookStatus,
        now: Timestamp,
    ) -> StoreResult<()>;

    /// Counts over all projects.
    async fn project_stats(&self) -> StoreResult<ProjectStats>;

    // ----- webhook events -----------------------------------------------------

    /// Records an arriving delivery. `None` when a delivery with the same
    /// `(platform, delivery_id)` was already recorded (a redelivery: the
    /// caller must do nothing).
    async fn record_webhook_event(&self, event: WebhookEvent) -> StoreResult<Option<WebhookEvent>>;

    /// Sets what became of a delivery. A `failed` delivery gives its
    /// delivery id up, so the forge's redelivery of it is handled again
    /// instead of being taken for a duplicate.
    async fn finish_webhook_event(
        &self,
        id: &str,
        outcome: &str,
        reason: Option<&str>,
        review_id: Option<&ReviewId>,
        now: Timestamp,
    ) -> StoreResult<WebhookEvent>;

    /// Deliveries, newest first, with the total count.
    async fn list_webhook_events(
        &self,
        filter: &WebhookEventFilter,
    ) -> StoreResult<(Vec<WebhookEvent>, u64)>;

    // ----- push-back ----------------------------------------------------------

    /// Claims up to `limit` finished forge reviews whose push-back is due
    /// (`pending`, `next_at` passed, no live lease) with a lease until
    /// `lease_until`, counting the attempt. Two callers never claim the same
    /// review while its lease lives.
    async fn claim_pushbacks(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<PushJob>>;

    /// Ends a push-back attempt: `sent`, `failed` or `skipped` (final), or
    /// `pending` again with `retry_at`.
    async fn finish_pushback(
        &self,
        review: &ReviewId,
        state: &str,
        error: Option<&str>,
        retry_at: Option<Timestamp>,
        now: Timestamp,
    ) -> StoreResult<()>;

    /// A review's push-back state.
    async fn push_state(&self, review: &ReviewId) -> StoreResult<PushState>;

    /// The thread of a merge/pull request (empty when nothing was posted).
    async fn change_thread(&self, project: &ProjectId, number: u64) -> StoreResult<ChangeThread>;

    /// Saves the thread of a merge/pull request.
    async fn save_change_thread(
        &self,
        project: &ProjectId,
        number: u64,
        thread: &ChangeThread,
        now: Timestamp,
    ) -> StoreResult<()>;

    // ----- notifications ------------------------------------------------------

    /// Queues notifications, in one transaction: each is stored `pending`,
    /// due at its `now`, with no tries yet, unless a notification with the
    /// same [`NewNotification::dedup_key`] is already stored (whatever its
    /// status, and including an earlier item of the same batch), in which
    /// case it is skipped without error. Returns the notifications actually
    /// queued, in the order given; empty when all were duplicates.
    ///
    /// The key check is the database's unique constraint
    /// (`INSERT … ON CONFLICT (dedup_key) DO NOTHING`), so it holds across
    /// server replicas racing to enqueue the same event: a daily summary is
    /// queued once per day and channel however many replicas run the
    /// scheduler. [`StoreError::Conflict`] only if an id is taken.
    async fn enqueue_notifications(
        &self,
        items: Vec<NewNotification>,
    ) -> StoreResult<Vec<Notification>>;

    /// Claims up to `limit` due notifications: `pending`, `next_attempt_at`
    /// at or before `now`, and no live lease (none, or one that ended at or
    /// before `now`). Oldest first (by creation time, then id). Each is
    /// leased until `lease_until` and its `attempts` incremented, in the
    /// same statement. Two concurrent claims, from this process or another
    /// replica, never return the same notification while its lease lives
    /// (SQLite: one writer and a single `UPDATE … RETURNING`; PostgreSQL:
    /// `FOR UPDATE SKIP LOCKED`).
    async fn claim_notifications(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<Notification>>;

    /// Records how a delivery try ended and clears the lease:
    ///
    /// - [`NotificationOutcome::Sent`]: `sent` at `now`, last error cleared;
    /// - [`NotificationOutcome::Retry`]: stays `pending`, due again at `at`,
    ///   with the error;
    /// - [`NotificationOutcome::Failed`]: `failed`, with the error.
    ///
    /// Returns the notification afterwards. [`StoreError::NotFound`] if it
    /// does not exist; [`StoreError::Conflict`] (and nothing written) if it
    /// is already `sent` or `failed`, which are final: a late finish (from a
    /// sender whose lease ran out while another try ended it) cannot
    /// overwrite the outcome recorded.
    async fn finish_notification(
        &self,
        id: &NotificationId,
        outcome: NotificationOutcome,
        now: Timestamp,
    ) -> StoreResult<Notification>;

    /// One notification.
    async fn get_notification(&self, id: &NotificationId) -> StoreResult<Option<Notification>>;

    /// The notification history: notifications matching a filter, newest
    /// first (by creation time, then id), one page of them with the total
    /// count of matches.
    async fn list_notifications(
        &self,
        filter: &NotificationFilter,
    ) -> StoreResult<(Vec<Notification>, u64)>;

    /// Counts per channel and status of the notifications created at or
    /// after `start` and before `end` (each bound optional).
    async fn notification_stats(
        &self,
        start: Option<Timestamp>,
        end: Option<Timestamp>,
    ) -> StoreResult<NotificationStats>;

    // ----- push subscriptions -------------------------------------------------

    /// Saves a browser's Web Push subscription, keyed by its endpoint (the
    /// push service URL, unique per browser subscription), and returns the
    /// stored subscription.
    ///
    /// A new endpoint is inserted with `new.id`, created and updated at
    /// `new.now`. An endpoint already stored (the same browser subscribing
    /// again, after a reload, a key rotation or another user signing in on
    /// it) keeps its id and creation time, and has its user, keys
    /// (`p256dh`, `auth`) and user agent replaced and `updated_at` set to
    /// `new.now`; `new.id` is then ignored. One statement
    /// (`INSERT … ON CONFLICT (endpoint) DO UPDATE … RETURNING`), so two
    /// saves of one endpoint racing (from two replicas, say) leave one row.
    ///
    /// [`StoreError::Conflict`] (and nothing written) only if the endpoint
    /// is new and `new.id` is already the id of another endpoint. `auth`
    /// arrives sealed by the server; the store keeps every string as given.
    async fn save_push_subscription(
        &self,
        new: NewPushSubscription,
    ) -> StoreResult<PushSubscription>;

    /// One subscription.
    async fn get_push_subscription(
        &self,
        id: &PushSubscriptionId,
    ) -> StoreResult<Option<PushSubscription>>;

    /// The subscriptions of `user` (`Some`), or every subscription, those
    /// of no user included (`None`): the browsers to push a notification
    /// to. Oldest first (by creation time, then id).
    async fn list_push_subscriptions(
        &self,
        user: Option<&UserId>,
    ) -> StoreResult<Vec<PushSubscription>>;

    /// Deletes one subscription (the user unsubscribed, or the push service
    /// answered that the endpoint is gone). Returns whether a subscription
    /// was deleted: `false` for an unknown id, which is not an error.
    async fn delete_push_subscription(&self, id: &PushSubscriptionId) -> StoreResult<bool>;

    /// Deletes every subscription (the server's push keys were replaced, so
    /// none of them can be pushed to any more); returns how many.
    async fn delete_all_push_subscriptions(&self) -> StoreResult<u64>;

    // ----- several replicas ---------------------------------------------------

    /// Starts the periodic job `job` if it is due: atomically, when the job
    /// has never started or last started at or before `now - period_ms`,
    /// records `now` as its last start, counts a run, and returns `true`;
    /// otherwise changes nothing and returns `false`.
    ///
    /// One statement (`INSERT … ON CONFLICT (name) DO UPDATE … WHERE …
    /// RETURNING`), so of any number of callers racing for one period, on
    /// this replica or others, exactly one gets `true`. A `now` earlier
    /// than the last start (a replica whose clock lags) gets `false`.
    async fn try_start_periodic(
        &self,
        job: &str,
        now: Timestamp,
        period_ms: i64,
    ) -> StoreResult<bool>;

    /// How many times `job` was started by [`Store::try_start_periodic`]
    /// (0 if never).
    async fn periodic_runs(&self, job: &str) -> StoreResult<u64>;

    /// Counts one attempt against the shared rate limit `key` and returns
    /// the fixed window of `window_ms` milliseconds containing `now` (see
    /// [`RateLimitWindow::containing`]; values below 1 count as 1) with the
    /// number of attempts counted in it so far, this one included.
    ///
    /// This is the counter behind limits that must hold across server
    /// replicas, such as the login throttle: every replica counts into the
    /// same row, so N replicas allow the same number of attempts per window
    /// as one. The caller decides: over its limit when the returned `hits`
    /// exceed it, until the returned window's `end`. Every call counts, a
    /// refused attempt included (a client that keeps trying while limited
    /// stays limited until the window ends, not longer).
    ///
    /// One atomic statement (`INSERT … ON CONFLICT (key_digest,
    /// window_start) DO UPDATE SET hits = hits + 1 RETURNING hits`), so
    /// concurrent calls for one key and window, on this replica or others,
    /// each count exactly once and each see a different count (PostgreSQL:
    /// the upsert's row lock; SQLite: the one writer). A `now` in an earlier
    /// window (a replica whose clock lags) counts into that window (from
    /// one again if its row was already deleted). Windows start afresh at zero: nothing carries over
    /// from the previous window. Use one `window_ms` per key (the key names
    /// the limit, [`RateLimitKey::new`]); two lengths for one key would
    /// share rows whose windows start at the same instant.
    ///
    /// Nothing is pruned here, to keep the call one write: rows are deleted
    /// by [`Store::delete_expired_rate_limit_windows`] once
    /// [`RateLimitWindow::kept_until`] has passed.
    async fn hit_rate_limit(
        &self,
        key: &RateLimitKey,
        now: Timestamp,
        window_ms: i64,
    ) -> StoreResult<RateLimitWindow>;

    /// Deletes the rate-limit windows of every key whose
    /// [`RateLimitWindow::kept_until`] is at or before `now` (one window
    /// past their end: nothing counts into them any more); returns how
    /// many. The reaper calls it, so the table holds about two windows of
    /// attempts whatever the number of clients.
    async fn delete_expired_rate_limit_windows(&self, now: Timestamp) -> StoreResult<u64>;

    /// Tells the other processes sharing the database that tasks became
    /// claimable, so they wake their long-polling runners. Call it after
    /// the transaction that queued (or re-queued) the tasks has committed;
    /// it runs outside any transaction. PostgreSQL: `pg_notify` on the
    /// channel `ai_review_tasks`. SQLite: nothing (one process only).
    async fn announce_tasks(&self) -> StoreResult<()>;

    /// Starts listening for [`Store::announce_tasks`] from any process
    /// sharing the database, this one included: each call gets its own
    /// listener, running until the returned value is dropped or the store is
    /// closed. Announcements made after this returns are received.
    /// PostgreSQL: a dedicated `LISTEN ai_review_tasks` connection that
    /// reconnects with backoff after errors and yields an extra item after
    /// each reconnect (announcements may have been missed meanwhile); an
    /// error only if the first connection fails. SQLite: `None`, as no
    /// other process can share the database.
    async fn task_announcements(&self) -> StoreResult<Option<TaskAnnouncements>>;
}
