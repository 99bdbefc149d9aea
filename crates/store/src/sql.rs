//! Every SQL statement of the crate, the one way statements run on both backends, and the
//! embedded migrations.
//!
//! Nothing outside this module writes SQL: a [`Stmt`] can only be made here. Each statement
//! is one text for both backends, with `$N` placeholders, which sqlx binds to the Nth value
//! on SQLite as on PostgreSQL (a placeholder may appear more than once). The functions of
//! the submodules, one per group of tables ([`catalog`], [`frontier`], [`findings`],
//! [`notices`]), build a statement with its arguments from the crate's records, and
//! [`Store`] and [`Tx`] run it on whichever pool the store has. Rows are read by column name
//! into row structs that mirror the tables in the database's types (`table_row!`); the
//! submodules convert them into the public records, where a stored value the record cannot
//! hold (an unknown status text, a negative length) is [`StoreError::Corrupt`].
//!
//! The dialects differ only in the migrations and the queries on sqlx's migrations table
//! ([`Dialect`]), and in the claim of frontier rows (`FOR UPDATE SKIP LOCKED` on PostgreSQL,
//! see [`frontier::claim`]).

use std::borrow::Cow;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::PgRow;
use sqlx::query::Query;
use sqlx::sqlite::SqliteRow;
use sqlx::{Database, Decode, Encode, FromRow, Postgres, Row, SqlSafeStr, Sqlite, Type};

use crate::StoreError;
use crate::store::{Pools, Store};

/// Defines a row struct that mirrors a table's columns in the database's types, read by
/// column name on either backend, and (in tests) the list of its columns.
macro_rules! table_row {
    (
        $(#[$meta:meta])*
        struct $name:ident { $($col:ident: $ty:ty),+ $(,)? }
    ) => {
        $(#[$meta])*
        pub(crate) struct $name {
            $(pub(crate) $col: $ty,)+
        }

        #[cfg(test)]
        #[allow(dead_code)] // read by the tests of the tables with a column list
        impl $name {
            /// The columns read, in declaration order.
            pub(crate) const COLUMNS: &'static [&'static str] = &[$(stringify!($col)),+];
        }

        impl<'r, R: sqlx::Row> sqlx::FromRow<'r, R> for $name
        where
            &'r str: sqlx::ColumnIndex<R>,
            $($ty: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,)+
        {
            fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
                Ok($name {
                    $($col: row.try_get(stringify!($col))?,)+
                })
            }
        }
    };
}

pub(crate) mod catalog;
pub(crate) mod findings;
pub(crate) mod frontier;
pub(crate) mod notices;
pub(crate) mod revocations;

/// A value bound to a placeholder: the schema has two column types, 64-bit integers and text,
/// either of which may be NULL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Arg {
    Int(Option<i64>),
    Text(Option<String>),
}

impl From<i64> for Arg {
    fn from(v: i64) -> Arg {
        Arg::Int(Some(v))
    }
}

impl From<u32> for Arg {
    fn from(v: u32) -> Arg {
        Arg::Int(Some(i64::from(v)))
    }
}

impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Arg {
        Arg::Int(v)
    }
}

impl From<&str> for Arg {
    fn from(v: &str) -> Arg {
        Arg::Text(Some(v.to_owned()))
    }
}

impl From<Option<&str>> for Arg {
    fn from(v: Option<&str>) -> Arg {
        Arg::Text(v.map(str::to_owned))
    }
}

impl From<String> for Arg {
    fn from(v: String) -> Arg {
        Arg::Text(Some(v))
    }
}

/// A statement and its arguments, `$1` first. Made only by this module's functions.
#[must_use]
#[derive(Debug)]
pub(crate) struct Stmt {
    sql: &'static str,
    args: Vec<Arg>,
}

impl Stmt {
    fn new(sql: &'static str) -> Stmt {
        Stmt {
            sql,
            args: Vec::new(),
        }
    }

    /// Binds the next placeholder.
    fn bind(mut self, value: impl Into<Arg>) -> Stmt {
        self.args.push(value.into());
        self
    }

    /// The sqlx query on backend `DB`.
    fn query<DB: Database>(self) -> Query<'static, DB, DB::Arguments>
    where
        Option<i64>: for<'q> Encode<'q, DB> + Type<DB>,
        Option<String>: for<'q> Encode<'q, DB> + Type<DB>,
    {
        self.args
            .into_iter()
            .fold(sqlx::query(self.sql), |q, arg| match arg {
                Arg::Int(v) => q.bind(v),
                Arg::Text(v) => q.bind(v),
            })
    }
}

/// A type rows are read into on either backend (a row struct of `table_row!`).
pub(crate) trait FromRows:
    for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}

impl<T> FromRows for T where
    T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}

/// A type the one column of a result is read into on either backend.
pub(crate) trait Scalar:
    for<'r> Decode<'r, Sqlite> + Type<Sqlite> + for<'r> Decode<'r, Postgres> + Type<Postgres> + Send
{
}

impl<T> Scalar for T where
    T: for<'r> Decode<'r, Sqlite>
        + Type<Sqlite>
        + for<'r> Decode<'r, Postgres>
        + Type<Postgres>
        + Send
{
}

fn decode<T, R: Row>(rows: &[R]) -> Result<Vec<T>, sqlx::Error>
where
    T: for<'r> FromRow<'r, R>,
{
    rows.iter().map(T::from_row).collect()
}

impl Store {
    /// Runs a statement; the number of rows it changed.
    pub(crate) async fn execute(&self, stmt: Stmt) -> Result<u64, sqlx::Error> {
        Ok(match &self.pools {
            Pools::Sqlite(p) => stmt.query::<Sqlite>().execute(p).await?.rows_affected(),
            Pools::Postgres(p) => stmt.query::<Postgres>().execute(p).await?.rows_affected(),
        })
    }

    /// Every row of a query.
    pub(crate) async fn fetch_all<T: FromRows>(&self, stmt: Stmt) -> Result<Vec<T>, sqlx::Error> {
        match &self.pools {
            Pools::Sqlite(p) => decode(&stmt.query::<Sqlite>().fetch_all(p).await?),
            Pools::Postgres(p) => decode(&stmt.query::<Postgres>().fetch_all(p).await?),
        }
    }

    /// The one row of a query that returns one.
    pub(crate) async fn fetch_one<T: FromRows>(&self, stmt: Stmt) -> Result<T, sqlx::Error> {
        match &self.pools {
            Pools::Sqlite(p) => T::from_row(&stmt.query::<Sqlite>().fetch_one(p).await?),
            Pools::Postgres(p) => T::from_row(&stmt.query::<Postgres>().fetch_one(p).await?),
        }
    }

    /// The first row of a query, if any.
    pub(crate) async fn fetch_optional<T: FromRows>(
        &self,
        stmt: Stmt,
    ) -> Result<Option<T>, sqlx::Error> {
        match &self.pools {
            Pools::Sqlite(p) => stmt
                .query::<Sqlite>()
                .fetch_optional(p)
                .await?
                .map(|r| T::from_row(&r))
                .transpose(),
            Pools::Postgres(p) => stmt
                .query::<Postgres>()
                .fetch_optional(p)
                .await?
                .map(|r| T::from_row(&r))
                .transpose(),
        }
    }

    /// The one value of a query that returns one row of one column.
    pub(crate) async fn fetch_scalar<T: Scalar>(&self, stmt: Stmt) -> Result<T, sqlx::Error> {
        match &self.pools {
            Pools::Sqlite(p) => stmt.query::<Sqlite>().fetch_one(p).await?.try_get(0),
            Pools::Postgres(p) => stmt.query::<Postgres>().fetch_one(p).await?.try_get(0),
        }
    }

    /// Starts a transaction on a pooled connection.
    pub(crate) async fn begin(&self) -> Result<Tx, sqlx::Error> {
        Ok(match &self.pools {
            Pools::Sqlite(p) => Tx::Sqlite(p.begin().await?),
            Pools::Postgres(p) => Tx::Postgres(p.begin().await?),
        })
    }

    /// The statements that differ between the backends.
    pub(crate) fn dialect(&self) -> &'static Dialect {
        match self.pools {
            Pools::Sqlite(_) => &SQLITE,
            Pools::Postgres(_) => &POSTGRES,
        }
    }
}

/// A transaction: commit it, or it is rolled back when dropped.
pub(crate) enum Tx {
    Sqlite(sqlx::Transaction<'static, Sqlite>),
    Postgres(sqlx::Transaction<'static, Postgres>),
}

impl Tx {
    /// Runs a statement; the number of rows it changed.
    pub(crate) async fn execute(&mut self, stmt: Stmt) -> Result<u64, sqlx::Error> {
        Ok(match self {
            Tx::Sqlite(t) => stmt
                .query::<Sqlite>()
                .execute(&mut **t)
                .await?
                .rows_affected(),
            Tx::Postgres(t) => stmt
                .query::<Postgres>()
                .execute(&mut **t)
                .await?
                .rows_affected(),
        })
    }

    /// Every row of a query.
    pub(crate) async fn fetch_all<T: FromRows>(
        &mut self,
        stmt: Stmt,
    ) -> Result<Vec<T>, sqlx::Error> {
        match self {
            Tx::Sqlite(t) => decode(&stmt.query::<Sqlite>().fetch_all(&mut **t).await?),
            Tx::Postgres(t) => decode(&stmt.query::<Postgres>().fetch_all(&mut **t).await?),
        }
    }

    /// The one value of a query that returns one row of one column.
    pub(crate) async fn fetch_scalar<T: Scalar>(&mut self, stmt: Stmt) -> Result<T, sqlx::Error> {
        match self {
            Tx::Sqlite(t) => stmt.query::<Sqlite>().fetch_one(&mut **t).await?.try_get(0),
            Tx::Postgres(t) => stmt
                .query::<Postgres>()
                .fetch_one(&mut **t)
                .await?
                .try_get(0),
        }
    }

    /// Commits.
    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Sqlite(t) => t.commit().await,
            Tx::Postgres(t) => t.commit().await,
        }
    }

    /// Rolls back.
    pub(crate) async fn rollback(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Sqlite(t) => t.rollback().await,
            Tx::Postgres(t) => t.rollback().await,
        }
    }
}

/// A stored integer as the record's type, or [`StoreError::Corrupt`] naming the column.
pub(crate) fn stored_int<T: TryFrom<i64>>(column: &str, value: i64) -> Result<T, StoreError> {
    T::try_from(value).map_err(|_| StoreError::Corrupt {
        detail: format!(
            "{column} = {value} does not fit in {}",
            std::any::type_name::<T>()
        ),
    })
}

/// A stored status text as its enum, or [`StoreError::Corrupt`] naming the column and the
/// valid texts.
pub(crate) fn stored_text<T>(column: &str, value: &str) -> Result<T, StoreError>
where
    T: std::str::FromStr<Err = crate::UnknownValue>,
{
    value.parse().map_err(|e| StoreError::Corrupt {
        detail: format!("{column}: {e}"),
    })
}

/// One embedded migration: version, description, SQL text.
pub(crate) struct EmbeddedMigration {
    pub(crate) version: i64,
    pub(crate) description: &'static str,
    pub(crate) sql: &'static str,
}

/// What differs between the backends besides the claim of frontier rows.
pub(crate) struct Dialect {
    /// Embedded migrations, oldest first. Both backends list the same versions.
    pub(crate) migrations: &'static [EmbeddedMigration],
    /// Whether sqlx's migrations table exists (boolean).
    migrations_table_exists: &'static str,
    /// Highest applied migration version.
    schema_version: &'static str,
}

/// Table in which sqlx's migrator records applied migrations (its default).
const MIGRATIONS_TABLE: &str = "_sqlx_migrations";

pub(crate) const SQLITE: Dialect = Dialect {
    migrations: &[
        EmbeddedMigration {
            version: 1,
            description: "init",
            sql: include_str!("../migrations/sqlite/0001_init.sql"),
        },
        EmbeddedMigration {
            version: 2,
            description: "crawl",
            sql: include_str!("../migrations/sqlite/0002_crawl.sql"),
        },
        EmbeddedMigration {
            version: 3,
            description: "takedown",
            sql: include_str!("../migrations/sqlite/0003_takedown.sql"),
        },
        EmbeddedMigration {
            version: 4,
            description: "crawl_claims_redirects",
            sql: include_str!("../migrations/sqlite/0004_crawl_claims_redirects.sql"),
        },
        EmbeddedMigration {
            version: 5,
            description: "finding_no_match",
            sql: include_str!("../migrations/sqlite/0005_finding_no_match.sql"),
        },
        EmbeddedMigration {
            version: 6,
            description: "revocations",
            sql: include_str!("../migrations/sqlite/0006_revocations.sql"),
        },
    ],
    migrations_table_exists: "SELECT EXISTS (SELECT 1 FROM sqlite_master \
         WHERE type = 'table' AND name = '_sqlx_migrations')",
    schema_version: "SELECT MAX(version) FROM _sqlx_migrations WHERE success = 1",
};

pub(crate) const POSTGRES: Dialect = Dialect {
    migrations: &[
        EmbeddedMigration {
            version: 1,
            description: "init",
            sql: include_str!("../migrations/postgres/0001_init.sql"),
        },
        EmbeddedMigration {
            version: 2,
            description: "crawl",
            sql: include_str!("../migrations/postgres/0002_crawl.sql"),
        },
        EmbeddedMigration {
            version: 3,
            description: "takedown",
            sql: include_str!("../migrations/postgres/0003_takedown.sql"),
        },
        EmbeddedMigration {
            version: 4,
            description: "crawl_claims_redirects",
            sql: include_str!("../migrations/postgres/0004_crawl_claims_redirects.sql"),
        },
        EmbeddedMigration {
            version: 5,
            description: "finding_no_match",
            sql: include_str!("../migrations/postgres/0005_finding_no_match.sql"),
        },
        EmbeddedMigration {
            version: 6,
            description: "revocations",
            sql: include_str!("../migrations/postgres/0006_revocations.sql"),
        },
    ],
    migrations_table_exists: "SELECT to_regclass('_sqlx_migrations') IS NOT NULL",
    schema_version: "SELECT MAX(version) FROM _sqlx_migrations WHERE success",
};

impl Dialect {
    /// A sqlx [`Migrator`] over this dialect's embedded migrations.
    ///
    /// Built from in-memory [`Migration`]s ([`Migrator::with_migrations`]), so an
    /// installed binary needs no `migrations/` folder beside it. Checksums are
    /// computed by sqlx from the embedded text, so editing an applied migration is
    /// detected at open (`MigrateError::VersionMismatch`).
    pub(crate) fn migrator(&self) -> Migrator {
        let migrations = self
            .migrations
            .iter()
            .map(|m| {
                Migration::new(
                    m.version,
                    Cow::Borrowed(m.description),
                    MigrationType::Simple,
                    m.sql.into_sql_str(),
                    false,
                )
            })
            .collect();
        let migrator = Migrator::with_migrations(migrations);
        debug_assert_eq!(migrator.table_name, MIGRATIONS_TABLE);
        migrator
    }

    /// Whether sqlx's migrations table exists (one boolean).
    pub(crate) fn migrations_table_exists(&self) -> Stmt {
        Stmt::new(self.migrations_table_exists)
    }

    /// The highest applied migration version (one nullable integer).
    pub(crate) fn schema_version(&self) -> Stmt {
        Stmt::new(self.schema_version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The migration files on disk, by file name, for one backend folder.
    fn files_on_disk(dir: &str) -> Vec<String> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(dir);
        let mut names: Vec<String> = std::fs::read_dir(&path)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        names.sort();
        names
    }

    fn file_name(m: &EmbeddedMigration) -> String {
        format!("{:04}_{}.sql", m.version, m.description)
    }

    #[test]
    fn both_backends_embed_the_same_migration_versions() {
        let a: Vec<_> = SQLITE
            .migrations
            .iter()
            .map(|m| (m.version, m.description))
            .collect();
        let b: Vec<_> = POSTGRES
            .migrations
            .iter()
            .map(|m| (m.version, m.description))
            .collect();
        assert_eq!(a, b);
        assert!(a.windows(2).all(|w| w[0].0 < w[1].0), "versions ascend");
    }

    #[test]
    fn every_migration_file_is_embedded() {
        for (dir, dialect) in [("sqlite", &SQLITE), ("postgres", &POSTGRES)] {
            let embedded: Vec<String> = dialect.migrations.iter().map(file_name).collect();
            assert_eq!(
                files_on_disk(dir),
                embedded,
                "migrations/{dir}: every file must be listed in sql.rs, named NNNN_description.sql"
            );
        }
    }

    /// A database at schema v4 keeps its findings when v5 rebuilds the SQLite table for the
    /// `no match` verdict, with its indexes, and takes the new verdict after (and still
    /// refuses an unknown one).
    #[tokio::test]
    async fn upgrading_to_v5_keeps_findings_and_takes_no_match() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("v4.sqlite").display()
        );
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        let v4 = Dialect {
            migrations: &SQLITE.migrations[..4],
            ..SQLITE
        };
        v4.migrator().run(&pool).await.unwrap();
        let insert = |id: &str, verdict: &str| {
            format!(
                "INSERT INTO findings (finding_id, media_url, page_url, redirect_chain, \
                 resolved_ip, kind, file_name, content_type, byte_len, blake3, sha256, \
                 capture_path, title_id, title_score, verdict, accused, report, \
                 capture_started_at, capture_finished_at, created_at, redirect_statuses) \
                 VALUES ('{id}', 'https://x.example/{id}.mp4', NULL, '[]', NULL, 'direct', \
                 '{id}.mp4', 'video/mp4', 10, '{b}', '{b}', '/c/{id}', 'bbb', 9, '{verdict}', \
                 '[]', '{{}}', 1, 2, 3, '[200]')",
                b = "ab".repeat(32)
            )
        };
        sqlx::raw_sql(sqlx::AssertSqlSafe(insert("old", "accused")))
            .execute(&pool)
            .await
            .unwrap();
        assert!(
            sqlx::raw_sql(sqlx::AssertSqlSafe(insert("early", "no match")))
                .execute(&pool)
                .await
                .is_err(),
            "schema v4 refuses the new verdict"
        );
        SQLITE.migrator().run(&pool).await.unwrap();
        let kept: (String, String, String) = sqlx::query_as(
            "SELECT verdict, redirect_statuses, media_url FROM findings WHERE finding_id = 'old'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(
            kept,
            (
                "accused".to_owned(),
                "[200]".to_owned(),
                "https://x.example/old.mp4".to_owned()
            )
        );
        sqlx::raw_sql(sqlx::AssertSqlSafe(insert("new", "no match")))
            .execute(&pool)
            .await
            .unwrap();
        assert!(
            sqlx::raw_sql(sqlx::AssertSqlSafe(insert("bad", "maybe")))
                .execute(&pool)
                .await
                .is_err()
        );
        let mut indexes: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'findings' \
             AND name NOT LIKE 'sqlite_autoindex%'",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        indexes.sort();
        assert_eq!(
            indexes,
            [
                "findings_created_at",
                "findings_media_url_sha256",
                "findings_sha256"
            ]
        );
        pool.close().await;
    }

    #[test]
    fn migrator_has_all_migrations() {
        for dialect in [&SQLITE, &POSTGRES] {
            let m = dialect.migrator();
            assert_eq!(m.iter().count(), dialect.migrations.len());
            assert!(m.version_exists(1));
        }
    }

    /// The `CHECK (column IN (...))` list of the migrations: `as_str` of every value, in
    /// order, so the enums store exactly the texts the schema allows, on both backends.
    fn assert_check_lists(column: &str, texts: &[&str]) {
        let list = texts
            .iter()
            .map(|t| format!("'{t}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let check = format!("{column} IN ({list})");
        for dialect in [&SQLITE, &POSTGRES] {
            assert!(
                dialect.migrations.iter().any(|m| m.sql.contains(&check)),
                "no migration has CHECK ({check})"
            );
        }
    }

    #[test]
    fn status_enums_store_the_texts_the_schema_allows() {
        fn texts<T: Copy>(all: &[T], as_str: fn(T) -> &'static str) -> Vec<&'static str> {
            all.iter().map(|v| as_str(*v)).collect()
        }
        use crate::*;
        assert_check_lists("kind", &texts(JobKind::ALL, JobKind::as_str));
        assert_check_lists("state", &texts(JobState::ALL, JobState::as_str));
        assert_check_lists("kind", &texts(FindingKind::ALL, FindingKind::as_str));
        assert_check_lists(
            "verdict",
            &texts(FindingVerdict::ALL, FindingVerdict::as_str),
        );
        assert_check_lists("level", &texts(NoticeLevel::ALL, NoticeLevel::as_str));
        assert_check_lists("channel", &texts(NoticeChannel::ALL, NoticeChannel::as_str));
        assert_check_lists(
            "delivery",
            &texts(NoticeDelivery::ALL, NoticeDelivery::as_str),
        );
        assert_check_lists(
            "disposition",
            &texts(NoticeDisposition::ALL, NoticeDisposition::as_str),
        );
    }

    #[test]
    fn unknown_text_names_the_valid_ones() {
        let e = "paused".parse::<crate::JobState>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown job state `paused` (expected queued, leased, done, dead, skipped)"
        );
        let e =
            stored_text::<crate::NoticeDelivery>("takedown_notices.delivery", "lost").unwrap_err();
        assert!(
            e.to_string().contains(
                "takedown_notices.delivery: unknown delivery state `lost` (expected \
                 pending_approval, approved, sending, sent, dry_run, failed, in_doubt)"
            ),
            "{e}"
        );
        for s in crate::FindingVerdict::ALL {
            assert_eq!(s.as_str().parse::<crate::FindingVerdict>(), Ok(*s));
        }
        assert_eq!(format!("[{:<8}]", crate::JobKind::Page), "[page    ]");
    }

    #[test]
    fn stored_ints_out_of_range_are_corrupt() {
        assert_eq!(stored_int::<u32>("c", 7).unwrap(), 7);
        let e = stored_int::<u32>("crawl_jobs.depth", -1).unwrap_err();
        assert!(matches!(e, StoreError::Corrupt { .. }), "{e}");
        assert!(e.to_string().contains("crawl_jobs.depth = -1"), "{e}");
    }
}
