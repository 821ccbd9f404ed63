//! Schema migrations, embedded in the binary and applied in order at
//! startup, each in its own transaction, recorded in `_migrations`.

use ai_review_store::StoreResult;
use ai_review_store::rows::db_error;
use sqlx::SqlitePool;

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

pub(crate) async fn run(pool: &SqlitePool) -> StoreResult<()> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS _migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, \
         applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)",
    )
    .execute(pool)
    .await
    .map_err(db_error)?;
    let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM _migrations")
        .fetch_all(pool)
        .await
        .map_err(db_error)?;
    for (version, name, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        let mut tx = pool.begin().await.map_err(db_error)?;
        sqlx::raw_sql(*sql)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        sqlx::query("INSERT INTO _migrations (version, name) VALUES (?1, ?2)")
            .bind(version)
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        tracing::info!(
            migration.version = version,
            migration.name = name,
            "applied migration"
        );
    }
    Ok(())
}
