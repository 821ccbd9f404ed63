//! The store conformance suite against SQLite (a fresh database file per test).

use ai_review_store::DynStore;
use ai_review_store_sqlite::SqliteStore;
use std::sync::Arc;

async fn fresh() -> DynStore {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("test.db").display());
    let store = SqliteStore::connect(&url).await.expect("open sqlite");
    // The directory must outlive the test; leak it (tests are short-lived).
    std::mem::forget(dir);
    Arc::new(store)
}

ai_review_store::conformance_suite!(fresh);
