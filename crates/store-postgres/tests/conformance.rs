//! The store conformance suite against PostgreSQL (a fresh database per test).

use ai_review_store::DynStore;
use ai_review_store_postgres::PgStore;
use std::sync::Arc;

async fn fresh() -> DynStore {
    let url = ai_review_pg_testing::fresh_database_url().await;
    Arc::new(
        PgStore::connect(&url)
            .await
            .expect("connect to test PostgreSQL"),
    )
}

ai_review_store::conformance_suite!(fresh);
