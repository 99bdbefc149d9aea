//! The SQLite store is private to its owner: the database file a store creates, and the WAL
//! and shared-memory files SQLite makes beside it, are mode 0600 whatever the umask lets
//! through (the store holds every session's account and the accusations).
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // test code: a panic is a failure report

use leaktrace_store::Store;
use std::os::unix::fs::PermissionsExt;

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn a_new_sqlite_store_is_readable_by_its_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("leaktrace.db");
    let store = Store::open(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    // A write, so the WAL and shared-memory files exist.
    store.migrate().await.unwrap();
    assert_eq!(mode(&db), 0o600, "{}", db.display());
    for suffix in ["-wal", "-shm"] {
        let side = dir.path().join(format!("leaktrace.db{suffix}"));
        if side.exists() {
            assert_eq!(
                mode(&side) & 0o077,
                0,
                "{} is {:o}",
                side.display(),
                mode(&side)
            );
        }
    }
    store.close().await;
}

#[tokio::test]
async fn an_existing_database_keeps_the_mode_its_owner_gave_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shared.db");
    let url = format!("sqlite://{}", db.display());
    Store::open(&url).await.unwrap().close().await;
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o640)).unwrap();
    Store::open(&url).await.unwrap().close().await;
    assert_eq!(mode(&db), 0o640);
}
