//! Every SQL string of the crate, per backend, and the embedded migrations.
//!
//! Nothing outside this module writes SQL. The two dialects differ only in
//! placeholder syntax (`?N` for SQLite, `$N` for PostgreSQL); the statements are
//! otherwise the same, so a change here must be made to both.

use std::borrow::Cow;

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

/// One embedded migration: version, description, SQL text.
pub(crate) struct EmbeddedMigration {
    pub(crate) version: i64,
    pub(crate) description: &'static str,
    pub(crate) sql: &'static str,
}

/// The statements of one backend.
pub(crate) struct Dialect {
    /// Embedded migrations, oldest first. Both backends list the same versions.
    pub(crate) migrations: &'static [EmbeddedMigration],
    /// Whether sqlx's migrations table exists (boolean).
    pub(crate) migrations_table_exists: &'static str,
    /// Highest applied migration version.
    pub(crate) schema_version: &'static str,
    /// Insert or update a title; keeps `created_at` of an existing row. Returns the row.
    pub(crate) upsert_title: &'static str,
    pub(crate) get_title: &'static str,
    pub(crate) list_titles: &'static str,
    pub(crate) insert_session: &'static str,
    pub(crate) get_session: &'static str,
    pub(crate) count_sessions: &'static str,
    /// Keyset pagination: `title_id = ?1 AND session_id > ?2 ORDER BY session_id LIMIT ?3`.
    pub(crate) sessions_page: &'static str,
}

/// Columns of `titles`, in the order of [`crate::model::TitleRow`].
macro_rules! title_cols {
    () => {
        "title_id, name, segment_duration_ms, position_count, key_version, created_at, reference_path"
    };
}

/// Columns of `sessions`, in the order of [`crate::model::SessionRow`].
macro_rules! session_cols {
    () => {
        "session_id, title_id, account_ref, issued_at, expires_at, key_version, created_at"
    };
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
    ],
    migrations_table_exists: "SELECT EXISTS (SELECT 1 FROM sqlite_master \
         WHERE type = 'table' AND name = '_sqlx_migrations')",
    schema_version: "SELECT MAX(version) FROM _sqlx_migrations WHERE success = 1",
    upsert_title: concat!(
        "INSERT INTO titles (",
        title_cols!(),
        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
         ON CONFLICT (title_id) DO UPDATE SET \
         name = excluded.name, \
         segment_duration_ms = excluded.segment_duration_ms, \
         position_count = excluded.position_count, \
         key_version = excluded.key_version, \
         reference_path = excluded.reference_path \
         RETURNING ",
        title_cols!()
    ),
    get_title: concat!("SELECT ", title_cols!(), " FROM titles WHERE title_id = ?1"),
    list_titles: concat!("SELECT ", title_cols!(), " FROM titles ORDER BY title_id"),
    insert_session: concat!(
        "INSERT INTO sessions (",
        session_cols!(),
        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
    ),
    get_session: concat!(
        "SELECT ",
        session_cols!(),
        " FROM sessions WHERE session_id = ?1"
    ),
    count_sessions: "SELECT COUNT(*) FROM sessions WHERE title_id = ?1",
    sessions_page: concat!(
        "SELECT ",
        session_cols!(),
        " FROM sessions WHERE title_id = ?1 AND session_id > ?2 \
         ORDER BY session_id LIMIT ?3"
    ),
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
    ],
    migrations_table_exists: "SELECT to_regclass('_sqlx_migrations') IS NOT NULL",
    schema_version: "SELECT MAX(version) FROM _sqlx_migrations WHERE success",
    upsert_title: concat!(
        "INSERT INTO titles (",
        title_cols!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (title_id) DO UPDATE SET \
         name = excluded.name, \
         segment_duration_ms = excluded.segment_duration_ms, \
         position_count = excluded.position_count, \
         key_version = excluded.key_version, \
         reference_path = excluded.reference_path \
         RETURNING ",
        title_cols!()
    ),
    get_title: concat!("SELECT ", title_cols!(), " FROM titles WHERE title_id = $1"),
    list_titles: concat!("SELECT ", title_cols!(), " FROM titles ORDER BY title_id"),
    insert_session: concat!(
        "INSERT INTO sessions (",
        session_cols!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7)"
    ),
    get_session: concat!(
        "SELECT ",
        session_cols!(),
        " FROM sessions WHERE session_id = $1"
    ),
    count_sessions: "SELECT COUNT(*) FROM sessions WHERE title_id = $1",
    sessions_page: concat!(
        "SELECT ",
        session_cols!(),
        " FROM sessions WHERE title_id = $1 AND session_id > $2 \
         ORDER BY session_id LIMIT $3"
    ),
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

    #[test]
    fn migrator_has_all_migrations() {
        for dialect in [&SQLITE, &POSTGRES] {
            let m = dialect.migrator();
            assert_eq!(m.iter().count(), dialect.migrations.len());
            assert!(m.version_exists(1));
        }
    }
}
