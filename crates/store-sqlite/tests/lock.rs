//! One server process per SQLite database: a second open of a file
//! database, from another process or this one, is refused while the first
//! store holds the file's lock.

use ai_review_store::Store;
use ai_review_store_sqlite::SqliteStore;

fn expected_refusal(db: &std::path::Path) -> String {
    format!(
        "another ai-review process is using the SQLite database {db} (its lock file {db}.lock is \
         held). SQLite supports one server process: stop the other one, or use PostgreSQL \
         (DATABASE_URL=postgres://...) to run several replicas",
        db = db.display()
    )
}

#[tokio::test]
async fn a_second_open_is_refused_until_the_first_store_is_gone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("one.db");
    let url = format!("sqlite://{}", db.display());
    let first = SqliteStore::connect(&url).await.expect("first open");
    let clone = first.clone();

    let refused = SqliteStore::connect(&url)
        .await
        .err()
        .expect("a second open is refused");
    let message = refused.to_string();
    assert!(
        message.contains(&expected_refusal(&db)),
        "names the database, its lock file and the way out: {message}"
    );
    // The same file under another spelling is the same lock.
    let other_spelling = format!("sqlite://{}/./one.db", dir.path().display());
    assert!(SqliteStore::connect(&other_spelling).await.is_err());
    first.ping().await.expect("the first store still works");

    // Clones share the lock: it is held until the last one is dropped.
    drop(first);
    assert!(
        SqliteStore::connect(&url).await.is_err(),
        "a clone holds it"
    );
    drop(clone);
    let again = SqliteStore::connect(&url)
        .await
        .expect("opens again once the first store is gone");
    again.ping().await.expect("ping");

    // Closing releases the lock too, even while the handle lives on.
    again.close().await;
    let after_close = SqliteStore::connect(&url)
        .await
        .expect("opens after the holder closed");

    // A short-lived tool may open the file beside the server, unlocked.
    let tool = SqliteStore::connect_unlocked(&url)
        .await
        .expect("an unlocked open beside the holder");
    tool.ping().await.expect("ping");
    after_close.ping().await.expect("ping");
}

#[tokio::test]
async fn in_memory_databases_take_no_lock() {
    let a = SqliteStore::connect("sqlite::memory:").await.expect("a");
    let b = SqliteStore::connect("sqlite::memory:").await.expect("b");
    a.ping().await.expect("ping a");
    b.ping().await.expect("ping b");
}
