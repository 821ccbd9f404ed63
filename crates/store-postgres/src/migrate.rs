//! Schema migrations, embedded in the binary and applied in order at
//! startup, each in its own transaction, recorded in `_migrations`.
//!
//! Several server replicas may start at the same time against one
//! database. Every migration transaction first takes a transaction-scoped
//! advisory lock (`pg_advisory_xact_lock`, released at commit or rollback,
//! so a crashed replica never leaves it held) and only then checks whether
//! the migration is already recorded: replicas queue on the lock, the first
//! applies the migration, the others see it recorded and skip it. DDL is
//! transactional in PostgreSQL, so a failed migration leaves no trace.

use ai_review_store::StoreResult;
use ai_review_store::rows::db_error;
use sqlx::{PgConnection, PgPool};

/// Advisory lock key serialising migrations across replicas ("airv").
const MIGRATION_LOCK: i64 = 0x6169_7276;

/// `(version, name, SQL)`, in the order they are applied.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../migrations/0001_init.sql")),
    (
        2,
        "config_items",
        include_str!("../migrations/0002_config_items.sql"),
    ),
    (
        3,
        "projects",
        include_str!("../migrations/0003_projects.sql"),
    ),
    (
        4,
        "webhook_events",
        include_str!("../migrations/0004_webhook_events.sql"),
    ),
    (
        5,
        "review_changes",
        include_str!("../migrations/0005_review_changes.sql"),
    ),
    (
        6,
        "pushback",
        include_str!("../migrations/0006_pushback.sql"),
    ),
    (
        7,
        "sessions",
        include_str!("../migrations/0007_sessions.sql"),
    ),
    (
        8,
        "notifications",
        include_str!("../migrations/0008_notifications.sql"),
    ),
    (
        9,
        "push_subscriptions",
        include_str!("../migrations/0009_push_subscriptions.sql"),
    ),
    (
        10,
        "periodic_jobs",
        include_str!("../migrations/0010_periodic_jobs.sql"),
    ),
    (
        11,
        "rate_limit_windows",
        include_str!("../migrations/0011_rate_limit_windows.sql"),
    ),
];

async fn lock(c: &mut PgConnection) -> StoreResult<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *c)
        .await
        .map_err(db_error)?;
    Ok(())
}

pub(crate) async fn run(pool: &PgPool) -> StoreResult<()> {
    // Concurrent `CREATE TABLE IF NOT EXISTS` can still fail on the catalog's
    // unique index, so the bookkeeping table is created under the lock too.
    let mut tx = pool.begin().await.map_err(db_error)?;
    lock(&mut tx).await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS _migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, \
         applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .execute(&mut *tx)
    .await
    .map_err(db_error)?;
    tx.commit().await.map_err(db_error)?;

    for &(version, name, sql) in MIGRATIONS {
        let mut tx = pool.begin().await.map_err(db_error)?;
        match apply(&mut tx, version, name, sql).await {
            Ok(applied) => {
                tx.commit().await.map_err(db_error)?;
                if applied {
                    tracing::info!(
                        migration.version = version,
                        migration.name = name,
                        "applied migration"
                    );
                }
            }
            Err(e) => {
                // Release the lock now rather than whenever the pool gets
                // round to rolling back a dropped transaction.
                let _ = tx.rollback().await;
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Inside the caller's transaction: takes the lock, then applies and
/// records the migration unless another replica already did. Returns
/// whether it applied it.
async fn apply(
    c: &mut PgConnection,
    version: i64,
    name: &str,
    sql: &'static str,
) -> StoreResult<bool> {
    lock(c).await?;
    let recorded: Option<i64> =
        sqlx::query_scalar("SELECT version FROM _migrations WHERE version = $1")
            .bind(version)
            .fetch_optional(&mut *c)
            .await
            .map_err(db_error)?;
    if recorded.is_some() {
        return Ok(false);
    }
    sqlx::raw_sql(sql)
        .execute(&mut *c)
        .await
        .map_err(db_error)?;
    sqlx::query("INSERT INTO _migrations (version, name) VALUES ($1, $2)")
        .bind(version)
        .bind(name)
        .execute(&mut *c)
        .await
        .map_err(db_error)?;
    Ok(true)
}
