//! Session revocation: an append-only audit trail of who revoked or restored which session,
//! when and why, and the current list of revoked sessions that the edge follows.

use crate::sql::{self, revocations::EventRow};
use crate::store::Store;
use crate::{StoreError, now_unix};

text_enum! {
    /// What an audit event did (`revocation_events.action`).
    #[non_exhaustive]
    pub enum RevocationAction ("revocation action") {
        /// The session was cut off.
        Revoke = "revoke",
        /// The session may play again.
        Restore = "restore",
    }
}

/// One entry of the audit trail. Entries are never changed or deleted (the schema refuses).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RevocationEvent {
    /// Order of recording (increasing; gaps are possible).
    pub seq: i64,
    /// The session.
    pub session_id: String,
    /// Revoke or restore.
    pub action: RevocationAction,
    /// Who did it (an operator's name, `policy:auto`, an API token's label).
    pub actor: String,
    /// Why.
    pub reason: String,
    /// When (UTC unix seconds).
    pub at: i64,
}

impl RevocationEvent {
    /// The event as JSON (`seq`, `session_id`, `action`, `actor`, `reason`, `at`), as the CLI
    /// and the edge's admin API print it.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "seq": self.seq,
            "session_id": self.session_id,
            "action": self.action.as_str(),
            "actor": self.actor,
            "reason": self.reason,
            "at": self.at,
        })
    }
}

/// A session that is revoked now.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RevokedSession {
    /// The session.
    pub session_id: String,
    /// The `seq` of the event that revoked it.
    pub seq: i64,
    /// When it was revoked (UTC unix seconds).
    pub at: i64,
}

/// Which sessions a revocation or restoration applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RevocationTarget<'a> {
    /// One session, by id.
    Session(&'a str),
    /// Every session of an account (`sessions.account_ref`) at the time of the call.
    Account(&'a str),
}

impl RevocationTarget<'_> {
    /// The session id or the account.
    pub fn id(&self) -> &str {
        match self {
            RevocationTarget::Session(s) | RevocationTarget::Account(s) => s,
        }
    }

    fn what(&self) -> &'static str {
        match self {
            RevocationTarget::Session(_) => "session",
            RevocationTarget::Account(_) => "account",
        }
    }
}

/// Longest actor and reason accepted, in bytes.
pub const MAX_AUDIT_TEXT: usize = 1024;

fn check_audit(actor: &str, reason: &str) -> Result<(), StoreError> {
    if actor.is_empty() || actor.len() > MAX_AUDIT_TEXT || actor.chars().any(char::is_control) {
        return Err(StoreError::InvalidInput {
            field: "actor",
            reason: "must be 1 to 1024 bytes without control characters",
        });
    }
    if reason.len() > MAX_AUDIT_TEXT || reason.chars().any(|c| c.is_control() && c != '\n') {
        return Err(StoreError::InvalidInput {
            field: "reason",
            reason: "must be at most 1024 bytes without control characters",
        });
    }
    Ok(())
}

impl Store {
    /// Revokes the sessions `target` names that are not revoked yet, recording one audit
    /// event each, all in one transaction. Returns the events (at least one).
    ///
    /// Errors: [`StoreError::NotFound`] if the target names no session,
    /// [`StoreError::Unchanged`] if every session it names is revoked already (nothing is
    /// recorded), [`StoreError::InvalidInput`] for an empty or oversized actor or reason.
    pub async fn revoke(
        &self,
        target: RevocationTarget<'_>,
        actor: &str,
        reason: &str,
    ) -> Result<Vec<RevocationEvent>, StoreError> {
        self.record(target, actor, reason, RevocationAction::Revoke)
            .await
    }

    /// Restores the revoked sessions `target` names, recording one audit event each, in one
    /// transaction. Returns the events (at least one).
    ///
    /// Errors: [`StoreError::NotFound`] if the target names no session,
    /// [`StoreError::Unchanged`] if none of them is revoked (nothing is recorded),
    /// [`StoreError::InvalidInput`] for an empty or oversized actor or reason.
    pub async fn restore(
        &self,
        target: RevocationTarget<'_>,
        actor: &str,
        reason: &str,
    ) -> Result<Vec<RevocationEvent>, StoreError> {
        self.record(target, actor, reason, RevocationAction::Restore)
            .await
    }

    async fn record(
        &self,
        target: RevocationTarget<'_>,
        actor: &str,
        reason: &str,
        action: RevocationAction,
    ) -> Result<Vec<RevocationEvent>, StoreError> {
        check_audit(actor, reason)?;
        if target.id().is_empty() {
            return Err(StoreError::InvalidInput {
                field: "target",
                reason: "session id or account must not be empty",
            });
        }
        let at = now_unix();
        let mut tx = self.begin().await?;
        let stmt = sql::revocations::change_events(action, &target, actor, reason, at);
        let rows: Vec<EventRow> = tx.fetch_all(stmt).await?;
        if rows.is_empty() {
            let named: i64 = tx
                .fetch_scalar(sql::revocations::count_targets(&target))
                .await?;
            tx.rollback().await?;
            return Err(if named == 0 {
                StoreError::NotFound {
                    what: target.what(),
                    id: target.id().to_owned(),
                }
            } else {
                StoreError::Unchanged {
                    what: target.what(),
                    id: target.id().to_owned(),
                    state: match action {
                        RevocationAction::Revoke => "already revoked",
                        RevocationAction::Restore => "not revoked",
                    },
                }
            });
        }
        let events = rows
            .into_iter()
            .map(RevocationEvent::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        for e in &events {
            let stmt = match action {
                RevocationAction::Revoke => {
                    sql::revocations::insert_revoked(&e.session_id, e.seq, e.at)
                }
                RevocationAction::Restore => sql::revocations::delete_revoked(&e.session_id),
            };
            if let Err(err) = tx.execute(stmt).await {
                // A concurrent revocation of the same session got there first.
                if StoreError::is_unique_violation(&err) {
                    return Err(StoreError::Unchanged {
                        what: "session",
                        id: e.session_id.clone(),
                        state: "already revoked",
                    });
                }
                return Err(err.into());
            }
        }
        tx.commit().await?;
        Ok(events)
    }

    /// Whether a session is revoked now.
    pub async fn is_revoked(&self, session_id: &str) -> Result<bool, StoreError> {
        let n: i64 = self
            .fetch_scalar(sql::revocations::is_revoked(session_id))
            .await?;
        Ok(n > 0)
    }

    /// One page of the revoked sessions in id order (bytewise), after `after` (exclusive;
    /// `None` for the first page), at most `limit` (1 to 10 000).
    pub async fn revoked_sessions(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RevokedSession>, StoreError> {
        if !(1..=10_000).contains(&limit) {
            return Err(StoreError::InvalidInput {
                field: "limit",
                reason: "must be 1 to 10000",
            });
        }
        let rows: Vec<sql::revocations::RevokedRow> = self
            .fetch_all(sql::revocations::revoked_page(
                after.unwrap_or(""),
                i64::from(limit),
            ))
            .await?;
        Ok(rows.into_iter().map(RevokedSession::from).collect())
    }

    /// The audit events with `seq > after` recorded at or after `since` (UTC unix seconds), in
    /// `seq` order, at most `limit` (1 to 10 000); page on by passing the last `seq` as
    /// `after`. A follower reads what follows the highest `seq` it has applied (`since` 0),
    /// and on PostgreSQL also the last few seconds again from `after` 0, since an event there
    /// may commit after one with a higher `seq`.
    pub async fn revocation_events(
        &self,
        after: i64,
        since: i64,
        limit: u32,
    ) -> Result<Vec<RevocationEvent>, StoreError> {
        if !(1..=10_000).contains(&limit) {
            return Err(StoreError::InvalidInput {
                field: "limit",
                reason: "must be 1 to 10000",
            });
        }
        let rows: Vec<EventRow> = self
            .fetch_all(sql::revocations::events_since(
                after,
                since,
                i64::from(limit),
            ))
            .await?;
        rows.into_iter().map(RevocationEvent::try_from).collect()
    }

    /// One session's audit trail, oldest first.
    pub async fn revocation_history(
        &self,
        session_id: &str,
    ) -> Result<Vec<RevocationEvent>, StoreError> {
        let rows: Vec<EventRow> = self
            .fetch_all(sql::revocations::history(session_id))
            .await?;
        rows.into_iter().map(RevocationEvent::try_from).collect()
    }

    /// The highest audit `seq` recorded (0 with none).
    pub async fn last_revocation_seq(&self) -> Result<i64, StoreError> {
        Ok(self.fetch_scalar(sql::revocations::last_seq()).await?)
    }
}
