//! [`Store`]: the two backends behind one set of methods.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::Stream;
use futures_util::stream::try_unfold;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use crate::StoreError;
use crate::location::{Target, parse, redact_url};
use crate::model::{NewSession, NewTitle, Session, Title};
use crate::sql;
use crate::sql::catalog::{SessionRow, TitleRow};

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backend {
    /// One SQLite file (WAL journal), the default.
    Sqlite,
    /// A PostgreSQL database, for several workers or hosts.
    Postgres,
}

/// Tuning for [`Store::open_with`]. `Default` is what [`Store::open`] uses.
///
/// ```
/// let mut options = leaktrace_store::StoreOptions::default();
/// options.max_connections = Some(8);
/// options.migrate = false;
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StoreOptions {
    /// Pool size; `None`: 4 for SQLite (one writer at a time anyway), 10 for PostgreSQL.
    pub max_connections: Option<u32>,
    /// How long an operation waits for a free pooled connection.
    pub acquire_timeout: Duration,
    /// SQLite only: how long a statement waits for another connection's write lock.
    pub busy_timeout: Duration,
    /// Apply the embedded migrations while opening (default `true`).
    pub migrate: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_connections: None,
            acquire_timeout: Duration::from_secs(30),
            busy_timeout: Duration::from_secs(10),
            migrate: true,
        }
    }
}

/// A handle on the leaktrace database. Cheap to clone (the pool is shared).
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) pools: Pools,
}

#[derive(Debug, Clone)]
pub(crate) enum Pools {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Current time as UTC unix seconds.
pub(crate) fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl Store {
    /// Opens (creating a SQLite file if missing) the store at `url` and applies
    /// the embedded migrations. See [`Store::open_with`].
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        Store::open_with(url, &StoreOptions::default()).await
    }

    /// Opens the store at `url` with explicit options.
    ///
    /// Accepted URLs: `sqlite:///absolute/path.sqlite`, `sqlite:relative/path.sqlite`,
    /// `sqlite::memory:` (tests only: one connection, gone on close), and
    /// `postgres://user:password@host:port/database` (or `postgresql://`).
    ///
    /// SQLite connections use the WAL journal, `synchronous = FULL`, foreign keys
    /// on and a busy timeout. PostgreSQL connections force `synchronous_commit = on`.
    /// Both make a returned write durable: see [`Store::insert_session`].
    pub async fn open_with(url: &str, options: &StoreOptions) -> Result<Store, StoreError> {
        let open_err = |source| StoreError::Open {
            url_redacted: redact_url(url),
            source,
        };
        let pools = match parse(url)? {
            Target::Sqlite {
                options: conn,
                in_memory,
            } => {
                if !in_memory {
                    create_private(conn.get_filename()).map_err(|source| StoreError::Open {
                        url_redacted: redact_url(url),
                        source: sqlx::Error::Io(source),
                    })?;
                }
                let conn = conn
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Full)
                    .foreign_keys(true)
                    .busy_timeout(options.busy_timeout);
                let mut pool = SqlitePoolOptions::new()
                    .max_connections(options.max_connections.unwrap_or(4).max(1))
                    .acquire_timeout(options.acquire_timeout);
                if in_memory {
                    // An in-memory database lives as long as its last connection.
                    pool = pool
                        .max_connections(1)
                        .min_connections(1)
                        .idle_timeout(None)
                        .max_lifetime(None);
                }
                Pools::Sqlite(pool.connect_with(conn).await.map_err(open_err)?)
            }
            Target::Postgres(conn) => {
                let conn = conn
                    .application_name("leaktrace")
                    .options([("synchronous_commit", "on")]);
                let pool = PgPoolOptions::new()
                    .max_connections(options.max_connections.unwrap_or(10).max(1))
                    .acquire_timeout(options.acquire_timeout)
                    .connect_with(conn)
                    .await
                    .map_err(open_err)?;
                Pools::Postgres(pool)
            }
        };
        let store = Store { pools };
        if options.migrate {
            store.migrate().await?;
        }
        Ok(store)
    }

    /// Which backend this store uses.
    pub fn backend(&self) -> Backend {
        match self.pools {
            Pools::Sqlite(_) => Backend::Sqlite,
            Pools::Postgres(_) => Backend::Postgres,
        }
    }

    /// Applies the embedded migrations not yet applied; idempotent.
    ///
    /// Fails with [`StoreError::Migrate`] if the database holds a migration this
    /// build does not know (it was migrated by a newer leaktrace) or an applied
    /// migration's text changed. On PostgreSQL an advisory lock serialises
    /// concurrent openers.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = self.dialect().migrator();
        match &self.pools {
            Pools::Sqlite(pool) => migrator.run(pool).await,
            Pools::Postgres(pool) => migrator.run(pool).await,
        }
        .map_err(StoreError::Migrate)
    }

    /// The highest applied schema version, `None` before [`Store::migrate`].
    pub async fn schema_version(&self) -> Result<Option<i64>, StoreError> {
        let dialect = self.dialect();
        let exists: bool = self.fetch_scalar(dialect.migrations_table_exists()).await?;
        if !exists {
            return Ok(None);
        }
        Ok(self.fetch_scalar(dialect.schema_version()).await?)
    }

    /// Inserts a title or updates every field of an existing one except
    /// `created_at`. Returns the stored title.
    pub async fn upsert_title(&self, title: &NewTitle) -> Result<Title, StoreError> {
        title.validate()?;
        let row: TitleRow = self
            .fetch_one(sql::catalog::upsert_title(title, now_unix()))
            .await?;
        Title::try_from(row)
    }

    /// The title with this id, if any.
    pub async fn get_title(&self, title_id: &str) -> Result<Option<Title>, StoreError> {
        let row: Option<TitleRow> = self
            .fetch_optional(sql::catalog::get_title(title_id))
            .await?;
        row.map(Title::try_from).transpose()
    }

    /// All titles, ordered by `title_id` (bytewise).
    pub async fn list_titles(&self) -> Result<Vec<Title>, StoreError> {
        let rows: Vec<TitleRow> = self.fetch_all(sql::catalog::list_titles()).await?;
        rows.into_iter().map(Title::try_from).collect()
    }

    /// Records a session. Returns only after the row is committed: with SQLite
    /// the WAL is fsynced (`synchronous = FULL`), with PostgreSQL the commit is
    /// flushed (`synchronous_commit = on`), so the session survives a crash of
    /// the process or the host. Issue the token only after this returns.
    ///
    /// Errors: [`StoreError::Conflict`] if the id exists (the row is never
    /// replaced), [`StoreError::NotFound`] if the title does not exist,
    /// [`StoreError::InvalidInput`] for an empty id or `expires_at < issued_at`.
    pub async fn insert_session(&self, session: &NewSession) -> Result<Session, StoreError> {
        session.validate()?;
        let created_at = now_unix();
        self.execute(sql::catalog::insert_session(session, created_at))
            .await
            .map_err(|e| session_write_error(e, session))?;
        Ok(session.stored(created_at))
    }

    /// Records several sessions in one transaction: all or none. Durable on
    /// return like [`Store::insert_session`], at the cost of one commit.
    ///
    /// Errors as [`Store::insert_session`], for the first offending session;
    /// then nothing of the batch is stored.
    pub async fn insert_sessions(&self, sessions: &[NewSession]) -> Result<(), StoreError> {
        for s in sessions {
            s.validate()?;
        }
        let created_at = now_unix();
        let mut tx = self.begin().await?;
        for s in sessions {
            tx.execute(sql::catalog::insert_session(s, created_at))
                .await
                .map_err(|e| session_write_error(e, s))?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The session with this id, if any.
    pub async fn get_session(&self, session_id: &str) -> Result<Option<Session>, StoreError> {
        let row: Option<SessionRow> = self
            .fetch_optional(sql::catalog::get_session(session_id))
            .await?;
        row.map(Session::try_from).transpose()
    }

    /// Number of sessions recorded for a title (0 for an unknown title).
    pub async fn count_sessions(&self, title_id: &str) -> Result<u64, StoreError> {
        let n: i64 = self
            .fetch_scalar(sql::catalog::count_sessions(title_id))
            .await?;
        u64::try_from(n).map_err(|_| StoreError::Corrupt {
            detail: format!("negative count {n}"),
        })
    }

    /// One page of a title's sessions in `session_id` order (bytewise), starting
    /// after `after` (exclusive; `None` for the first page), at most `limit` rows.
    ///
    /// Keyset pagination on the `(title_id, session_id)` index: each page is an
    /// index range scan, whatever its depth. Pass the last id of a page as
    /// `after` to get the next; a page shorter than `limit` is the last.
    pub async fn sessions_page(
        &self,
        title_id: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Session>, StoreError> {
        // Ids are non-empty (schema CHECK), so "" sorts before every id.
        let after = after.unwrap_or("");
        let rows: Vec<SessionRow> = self
            .fetch_all(sql::catalog::sessions_page(title_id, after, limit))
            .await?;
        rows.into_iter().map(Session::try_from).collect()
    }

    /// Streams every session of a title in `session_id` order, `batch_size`
    /// sessions per item (0 counts as 1; the last batch may be shorter; no item
    /// at all for a title without sessions).
    ///
    /// Memory stays at one batch whatever the number of sessions (10⁶ for a big
    /// title), and no transaction or cursor is held between batches, so writers
    /// are never blocked. It is not a snapshot: a session inserted meanwhile is
    /// returned if its id sorts after the current position. Each existing
    /// session is returned exactly once. The stream is `'static` and `Send`,
    /// so it can be moved to a task.
    ///
    /// ```no_run
    /// # async fn f(store: leaktrace_store::Store) -> Result<(), leaktrace_store::StoreError> {
    /// use futures_util::TryStreamExt;
    /// let mut batches = std::pin::pin!(store.sessions_for_title("bbb", 10_000));
    /// while let Some(batch) = batches.try_next().await? {
    ///     for session in &batch { /* score session.session_id */ }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn sessions_for_title(
        &self,
        title_id: &str,
        batch_size: u32,
    ) -> impl Stream<Item = Result<Vec<Session>, StoreError>> + Send + 'static {
        let store = self.clone();
        let title_id = title_id.to_owned();
        let batch_size = batch_size.max(1);
        // State: Some(cursor) while more may follow, None when done.
        try_unfold(Some(None::<String>), move |state| {
            let store = store.clone();
            let title_id = title_id.clone();
            async move {
                let Some(after) = state else {
                    return Ok(None);
                };
                let page = store
                    .sessions_page(&title_id, after.as_deref(), batch_size)
                    .await?;
                let next = match page.last() {
                    None => return Ok(None),
                    Some(_) if page.len() < batch_size as usize => None,
                    Some(last) => Some(Some(last.session_id.clone())),
                };
                Ok(Some((page, next)))
            }
        })
    }

    /// Closes every pooled connection (waiting for those in use). Later calls on
    /// this store or its clones fail with [`StoreError::Database`]. On SQLite the
    /// WAL is checkpointed into the main file when the last connection closes.
    pub async fn close(&self) {
        match &self.pools {
            Pools::Sqlite(pool) => pool.close().await,
            Pools::Postgres(pool) => pool.close().await,
        }
    }
}

fn session_write_error(err: sqlx::Error, s: &NewSession) -> StoreError {
    StoreError::from_write(err, "session", &s.session_id, "title", &s.title_id)
}

/// Creates the SQLite database file readable and writable by its owner only (0600 on Unix) when
/// it does not exist yet. The store holds every session's account and the accusations, so it is
/// not for other users of the machine; SQLite gives its `-wal` and `-shm` files the database
/// file's mode. An existing file keeps the mode its owner gave it.
fn create_private(path: &std::path::Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}
