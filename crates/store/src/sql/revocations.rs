//! Statements on `revocation_events` (the append-only audit trail) and `revoked_sessions`
//! (the current state).

use super::{Stmt, stored_text};
use crate::StoreError;
use crate::revocations::{RevocationAction, RevocationEvent, RevocationTarget, RevokedSession};

/// Columns of `revocation_events`, as in [`EventRow`].
macro_rules! event_cols {
    () => {
        "seq, session_id, action, actor, reason, at"
    };
}

table_row! {
    /// A row of `revocation_events`.
    struct EventRow {
        seq: i64,
        session_id: String,
        action: String,
        actor: String,
        reason: String,
        at: i64,
    }
}

table_row! {
    /// A row of `revoked_sessions`.
    struct RevokedRow {
        session_id: String,
        seq: i64,
        at: i64,
    }
}

impl TryFrom<EventRow> for RevocationEvent {
    type Error = StoreError;

    fn try_from(r: EventRow) -> Result<Self, StoreError> {
        Ok(RevocationEvent {
            seq: r.seq,
            session_id: r.session_id,
            action: stored_text("revocation_events.action", &r.action)?,
            actor: r.actor,
            reason: r.reason,
            at: r.at,
        })
    }
}

impl From<RevokedRow> for RevokedSession {
    fn from(r: RevokedRow) -> Self {
        RevokedSession {
            session_id: r.session_id,
            seq: r.seq,
            at: r.at,
        }
    }
}

/// The statement that records `$action` for every session whose `$column` is `$1` and that
/// is (`EXISTS`) or is not (`NOT EXISTS`) revoked now, returning the events.
macro_rules! change_events {
    ($action:literal, $column:literal, $exists:literal) => {
        concat!(
            "INSERT INTO revocation_events (session_id, action, actor, reason, at) \
             SELECT s.session_id, '",
            $action,
            "', $2, $3, $4 FROM sessions s WHERE s.",
            $column,
            " = $1 AND ",
            $exists,
            " (SELECT 1 FROM revoked_sessions r WHERE r.session_id = s.session_id) \
             ORDER BY s.session_id RETURNING ",
            event_cols!()
        )
    };
}

/// Records `action` for every session the target names that is in the other state (a
/// revocation of the sessions not revoked, a restoration of the revoked ones); returns the
/// events. `$1` session id or account, `$2` actor, `$3` reason, `$4` time.
pub(crate) fn change_events(
    action: RevocationAction,
    target: &RevocationTarget<'_>,
    actor: &str,
    reason: &str,
    at: i64,
) -> Stmt {
    let sql = match (action, target) {
        (RevocationAction::Revoke, RevocationTarget::Session(_)) => {
            change_events!("revoke", "session_id", "NOT EXISTS")
        }
        (RevocationAction::Revoke, RevocationTarget::Account(_)) => {
            change_events!("revoke", "account_ref", "NOT EXISTS")
        }
        (RevocationAction::Restore, RevocationTarget::Session(_)) => {
            change_events!("restore", "session_id", "EXISTS")
        }
        (RevocationAction::Restore, RevocationTarget::Account(_)) => {
            change_events!("restore", "account_ref", "EXISTS")
        }
    };
    Stmt::new(sql)
        .bind(target.id())
        .bind(actor)
        .bind(reason)
        .bind(at)
}

/// Marks one session revoked by the event `seq` (fails on the primary key if it already is).
pub(crate) fn insert_revoked(session_id: &str, seq: i64, at: i64) -> Stmt {
    Stmt::new("INSERT INTO revoked_sessions (session_id, seq, at) VALUES ($1, $2, $3)")
        .bind(session_id)
        .bind(seq)
        .bind(at)
}

/// Clears one session's revocation.
pub(crate) fn delete_revoked(session_id: &str) -> Stmt {
    Stmt::new("DELETE FROM revoked_sessions WHERE session_id = $1").bind(session_id)
}

/// How many sessions the target names (0: unknown session or account).
pub(crate) fn count_targets(target: &RevocationTarget<'_>) -> Stmt {
    let sql = match target {
        RevocationTarget::Session(_) => "SELECT COUNT(*) FROM sessions WHERE session_id = $1",
        RevocationTarget::Account(_) => "SELECT COUNT(*) FROM sessions WHERE account_ref = $1",
    };
    Stmt::new(sql).bind(target.id())
}

/// The revoked sessions, in id order, after `after` (keyset pagination), at most `limit`.
pub(crate) fn revoked_page(after: &str, limit: i64) -> Stmt {
    Stmt::new(
        "SELECT session_id, seq, at FROM revoked_sessions WHERE session_id > $1 \
         ORDER BY session_id LIMIT $2",
    )
    .bind(after)
    .bind(limit)
}

/// Whether one session is revoked (0 or 1).
pub(crate) fn is_revoked(session_id: &str) -> Stmt {
    Stmt::new("SELECT COUNT(*) FROM revoked_sessions WHERE session_id = $1").bind(session_id)
}

/// The events after `seq` recorded at or after `since`, in `seq` order, at most `limit`.
pub(crate) fn events_since(seq: i64, since: i64, limit: i64) -> Stmt {
    Stmt::new(concat!(
        "SELECT ",
        event_cols!(),
        " FROM revocation_events WHERE seq > $1 AND at >= $2 ORDER BY seq LIMIT $3"
    ))
    .bind(seq)
    .bind(since)
    .bind(limit)
}

/// One session's events, oldest first.
pub(crate) fn history(session_id: &str) -> Stmt {
    Stmt::new(concat!(
        "SELECT ",
        event_cols!(),
        " FROM revocation_events WHERE session_id = $1 ORDER BY seq"
    ))
    .bind(session_id)
}

/// The highest event `seq` (0 with none).
pub(crate) fn last_seq() -> Stmt {
    Stmt::new("SELECT COALESCE(MAX(seq), 0) FROM revocation_events")
}
