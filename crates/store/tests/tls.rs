//! TLS to PostgreSQL: the store (as shipped, no feature to turn on) connects with
//! `sslmode=verify-full` to a server whose certificate is signed by a private CA given as
//! `sslrootcert`,
//! the connection is really encrypted (`pg_stat_ssl`), and the same URL without the server's
//! certificate as root is refused rather than falling back to plain TCP.
//!
//! Runs when `LEAKTRACE_TEST_PG_TLS_URL` is set (`scripts/pg-test-server.sh url-tls` prints
//! one; `scripts/test.sh` sets it); `LEAKTRACE_REQUIRE_PG=1` turns the skip into a failure.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // test code: a panic is a failure report

use leaktrace_store::Store;
use sqlx::Connection;

fn tls_url() -> Option<String> {
    match std::env::var("LEAKTRACE_TEST_PG_TLS_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            assert!(
                std::env::var("LEAKTRACE_REQUIRE_PG").as_deref() != Ok("1"),
                "LEAKTRACE_REQUIRE_PG=1 but LEAKTRACE_TEST_PG_TLS_URL is not set"
            );
            eprintln!("SKIPPED tls: LEAKTRACE_TEST_PG_TLS_URL not set");
            None
        }
    }
}

#[tokio::test]
async fn store_connects_over_verified_tls() {
    let Some(url) = tls_url() else { return };
    let store = Store::open(&url).await.unwrap();
    store.migrate().await.unwrap();
    store.close().await;

    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let (ssl, version): (bool, Option<String>) =
        sqlx::query_as("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert!(ssl, "the connection is not encrypted");
    assert!(version.unwrap_or_default().starts_with("TLS"));
    conn.close().await.unwrap();

    // Without the private CA as root, full verification must fail: the webpki roots do not
    // contain it.
    let no_root = url
        .split('&')
        .filter(|p| !p.starts_with("sslrootcert="))
        .collect::<Vec<_>>()
        .join("&");
    assert!(
        Store::open(&no_root).await.is_err(),
        "verify-full accepted an unknown certificate"
    );
}
