//! The crate's error type.

use crate::UnknownValue;

/// The schemes [`crate::Store::open`] accepts, as shown in [`StoreError::InvalidUrl`].
pub const ACCEPTED_URLS: &str = "sqlite:///absolute/path.sqlite, sqlite:relative/path.sqlite, \
     sqlite::memory:, postgres://user[:password]@host[:port]/database \
     (postgresql:// is accepted too)";

/// Errors of the store.
///
/// Messages never contain a password: URLs are redacted before they are put in
/// an error, and the sqlx errors kept as sources do not carry connect options.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The URL names no supported backend, or cannot be parsed (caller's fault).
    #[error(
        "invalid store URL `{url_redacted}`: {reason}; accepted: {}",
        ACCEPTED_URLS
    )]
    InvalidUrl {
        /// The URL with any password replaced by `***`.
        url_redacted: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The database could not be opened or connected to (file, network, auth).
    #[error("cannot open store `{url_redacted}`")]
    Open {
        /// The URL with any password replaced by `***`.
        url_redacted: String,
        /// The underlying error.
        #[source]
        source: sqlx::Error,
    },
    /// Applying the embedded migrations failed, e.g. the database was migrated
    /// by a newer leaktrace (unknown version) or an applied migration changed.
    #[error("cannot migrate the store schema")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// A record the operation depends on does not exist.
    #[error("{what} `{id}` not found")]
    NotFound {
        /// Kind of record (`"title"`, `"session"`).
        what: &'static str,
        /// Its id.
        id: String,
    },
    /// A record with this id already exists (and must not be replaced).
    #[error("{what} `{id}` already exists")]
    Conflict {
        /// Kind of record (`"session"`).
        what: &'static str,
        /// Its id.
        id: String,
    },
    /// The records are already in the state asked for (a session revoked twice, restored when
    /// not revoked); nothing was changed.
    #[error("{what} `{id}` is {state}; nothing changed")]
    Unchanged {
        /// Kind of record (`"session"`, `"account"`).
        what: &'static str,
        /// Its id.
        id: String,
        /// The state it is in (`"already revoked"`, `"not revoked"`).
        state: &'static str,
    },
    /// A value passed in breaks a rule of the schema (caller's fault).
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The offending field.
        field: &'static str,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// A text passed in names no value of the status it stands for, e.g. a verdict the
    /// `findings` table does not allow (caller's fault); the error names the valid texts.
    #[error(transparent)]
    InvalidValue(#[from] UnknownValue),
    /// A stored value cannot be represented in the Rust type (database edited by hand?).
    #[error("stored data out of range: {detail}")]
    Corrupt {
        /// What is out of range.
        detail: String,
    },
    /// Any other database error (I/O, lost connection, pool closed, ...).
    #[error("database error")]
    Database(#[from] sqlx::Error),
}

impl StoreError {
    pub(crate) fn invalid(field: &'static str, reason: &'static str) -> Self {
        StoreError::InvalidInput { field, reason }
    }

    /// Whether a database error is a unique-key violation.
    pub(crate) fn is_unique_violation(err: &sqlx::Error) -> bool {
        matches!(err, sqlx::Error::Database(db)
            if db.kind() == sqlx::error::ErrorKind::UniqueViolation)
    }

    /// Maps a constraint violation to `Conflict`/`NotFound`, anything else to `Database`.
    pub(crate) fn from_write(
        err: sqlx::Error,
        what: &'static str,
        id: &str,
        parent: &'static str,
        parent_id: &str,
    ) -> Self {
        if let sqlx::Error::Database(db) = &err {
            match db.kind() {
                sqlx::error::ErrorKind::UniqueViolation => {
                    return StoreError::Conflict {
                        what,
                        id: id.to_owned(),
                    };
                }
                sqlx::error::ErrorKind::ForeignKeyViolation => {
                    return StoreError::NotFound {
                        what: parent,
                        id: parent_id.to_owned(),
                    };
                }
                _ => {}
            }
        }
        StoreError::Database(err)
    }
}
