//! Statements on the catalogue: `titles` and `sessions`.

use super::{Stmt, stored_int};
use crate::StoreError;
use crate::model::{NewSession, NewTitle, Session, Title};

/// Columns of `titles`, as in [`TitleRow`].
macro_rules! title_cols {
    () => {
        "title_id, name, segment_duration_ms, position_count, key_version, created_at, reference_path"
    };
}

/// Columns of `sessions`, as in [`SessionRow`].
macro_rules! session_cols {
    () => {
        "session_id, title_id, account_ref, issued_at, expires_at, key_version, created_at"
    };
}

table_row! {
    /// A row of `titles`.
    struct TitleRow {
        title_id: String,
        name: String,
        segment_duration_ms: i64,
        position_count: i64,
        key_version: i64,
        created_at: i64,
        reference_path: Option<String>,
    }
}

table_row! {
    /// A row of `sessions`.
    struct SessionRow {
        session_id: String,
        title_id: String,
        account_ref: String,
        issued_at: i64,
        expires_at: i64,
        key_version: i64,
        created_at: i64,
    }
}

/// Insert or update a title; keeps `created_at` of an existing row. Returns the row.
const UPSERT_TITLE: &str = concat!(
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
);

pub(crate) fn upsert_title(t: &NewTitle, now: i64) -> Stmt {
    Stmt::new(UPSERT_TITLE)
        .bind(t.title_id.as_str())
        .bind(t.name.as_str())
        .bind(t.segment_duration_ms)
        .bind(t.position_count)
        .bind(t.key_version)
        .bind(now)
        .bind(t.reference_path.as_deref())
}

pub(crate) fn get_title(title_id: &str) -> Stmt {
    Stmt::new(concat!(
        "SELECT ",
        title_cols!(),
        " FROM titles WHERE title_id = $1"
    ))
    .bind(title_id)
}

pub(crate) fn list_titles() -> Stmt {
    Stmt::new(concat!(
        "SELECT ",
        title_cols!(),
        " FROM titles ORDER BY title_id"
    ))
}

pub(crate) fn insert_session(s: &NewSession, created_at: i64) -> Stmt {
    Stmt::new(concat!(
        "INSERT INTO sessions (",
        session_cols!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7)"
    ))
    .bind(s.session_id.as_str())
    .bind(s.title_id.as_str())
    .bind(s.account_ref.as_str())
    .bind(s.issued_at)
    .bind(s.expires_at)
    .bind(s.key_version)
    .bind(created_at)
}

pub(crate) fn get_session(session_id: &str) -> Stmt {
    Stmt::new(concat!(
        "SELECT ",
        session_cols!(),
        " FROM sessions WHERE session_id = $1"
    ))
    .bind(session_id)
}

/// One integer.
pub(crate) fn count_sessions(title_id: &str) -> Stmt {
    Stmt::new("SELECT COUNT(*) FROM sessions WHERE title_id = $1").bind(title_id)
}

/// Keyset pagination on the `(title_id, session_id)` index.
pub(crate) fn sessions_page(title_id: &str, after: &str, limit: u32) -> Stmt {
    Stmt::new(concat!(
        "SELECT ",
        session_cols!(),
        " FROM sessions WHERE title_id = $1 AND session_id > $2 \
         ORDER BY session_id LIMIT $3"
    ))
    .bind(title_id)
    .bind(after)
    .bind(limit)
}

impl TryFrom<TitleRow> for Title {
    type Error = StoreError;

    fn try_from(r: TitleRow) -> Result<Self, StoreError> {
        Ok(Title {
            title_id: r.title_id,
            name: r.name,
            segment_duration_ms: stored_int("titles.segment_duration_ms", r.segment_duration_ms)?,
            position_count: stored_int("titles.position_count", r.position_count)?,
            key_version: stored_int("titles.key_version", r.key_version)?,
            created_at: r.created_at,
            reference_path: r.reference_path,
        })
    }
}

impl TryFrom<SessionRow> for Session {
    type Error = StoreError;

    fn try_from(r: SessionRow) -> Result<Self, StoreError> {
        Ok(Session {
            session_id: r.session_id,
            title_id: r.title_id,
            account_ref: r.account_ref,
            issued_at: r.issued_at,
            expires_at: r.expires_at,
            key_version: stored_int("sessions.key_version", r.key_version)?,
            created_at: r.created_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_lists_match_the_rows() {
        assert_eq!(title_cols!(), TitleRow::COLUMNS.join(", "));
        assert_eq!(session_cols!(), SessionRow::COLUMNS.join(", "));
    }
}
