//! Test fixtures: a fresh store per test on SQLite (temp file) or PostgreSQL
//! (a database of its own on the server named by `LEAKTRACE_TEST_PG_URL`).

use std::sync::atomic::{AtomicU32, Ordering};

use leaktrace_store::{Backend, NewSession, NewTitle, Store};
use sqlx::{AssertSqlSafe, Connection};

/// Runs each named test body (`async fn NAME(db: &TestDb)` at the test crate's root) twice:
/// `sqlite::NAME` on a temp file, always, and `postgres::NAME` on a database of its own when
/// `LEAKTRACE_TEST_PG_URL` is set (else a skip notice; `LEAKTRACE_REQUIRE_PG=1` fails).
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = crate::common::TestDb::sqlite().await;
                    super::$name(&db).await;
                    db.finish().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = crate::common::TestDb::postgres(stringify!($name)).await else {
                        return;
                    };
                    super::$name(&db).await;
                    db.finish().await;
                }
            )*
        }
    };
}
pub(crate) use both_backends;

/// Environment variable naming the PostgreSQL server for the PG variants.
pub const PG_URL_VAR: &str = "LEAKTRACE_TEST_PG_URL";
/// Set to `1` (as CI does) to make a missing PG URL a failure, not a skip.
pub const REQUIRE_PG_VAR: &str = "LEAKTRACE_REQUIRE_PG";

/// The admin URL of the test PostgreSQL server, or `None` (after printing a
/// skip notice) when it is not configured.
pub fn pg_admin_url(test: &str) -> Option<String> {
    match std::env::var(PG_URL_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            if std::env::var(REQUIRE_PG_VAR).as_deref() == Ok("1") {
                panic!("{REQUIRE_PG_VAR}=1 but {PG_URL_VAR} is not set");
            }
            eprintln!(
                "SKIPPED postgres::{test}: {PG_URL_VAR} not set \
                 (start one with scripts/pg-test-server.sh start)"
            );
            None
        }
    }
}

/// One test's database and the store opened on it.
pub struct TestDb {
    pub store: Store,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg: Option<PgDb>,
}

struct PgDb {
    admin_url: String,
    name: String,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

impl TestDb {
    /// A store on a new SQLite file in a temporary directory.
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("store.sqlite").display());
        let store = Store::open(&url).await.unwrap();
        assert_eq!(store.backend(), Backend::Sqlite);
        TestDb {
            store,
            url,
            _dir: Some(dir),
            pg: None,
        }
    }

    /// A store on a new PostgreSQL database, or `None` if PG is not configured.
    pub async fn postgres(test: &str) -> Option<TestDb> {
        let admin_url = pg_admin_url(test)?;
        let short: String = test.chars().take(32).collect();
        let name = format!(
            "lt_{short}_{}_{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let mut conn = sqlx::PgConnection::connect(&admin_url).await.unwrap();
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        let mut url = url::Url::parse(&admin_url).unwrap();
        url.set_path(&name);
        let url = url.to_string();
        let store = Store::open(&url).await.unwrap();
        assert_eq!(store.backend(), Backend::Postgres);
        Some(TestDb {
            store,
            url,
            _dir: None,
            pg: Some(PgDb { admin_url, name }),
        })
    }

    /// Path of the SQLite file (SQLite only).
    pub fn sqlite_path(&self) -> Option<std::path::PathBuf> {
        self._dir.as_ref().map(|d| d.path().join("store.sqlite"))
    }

    /// Closes the store and drops the PG database.
    pub async fn finish(self) {
        self.store.close().await;
        if let Some(pg) = &self.pg {
            let mut conn = sqlx::PgConnection::connect(&pg.admin_url).await.unwrap();
            sqlx::query(AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                pg.name
            )))
            .execute(&mut conn)
            .await
            .unwrap();
            conn.close().await.unwrap();
        }
    }
}

/// A valid title with this id.
pub fn title(id: &str) -> NewTitle {
    NewTitle {
        title_id: id.to_owned(),
        name: format!("Title {id}"),
        segment_duration_ms: 2000,
        position_count: 298,
        key_version: 1,
        reference_path: None,
    }
}

/// A valid session of `title_id` with this id.
pub fn session(id: &str, title_id: &str) -> NewSession {
    NewSession {
        session_id: id.to_owned(),
        title_id: title_id.to_owned(),
        account_ref: format!("acct-{id}"),
        issued_at: 1_767_225_600,
        expires_at: 1_767_229_200,
        key_version: 1,
    }
}
