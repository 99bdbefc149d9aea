//! Statements on the takedown tables: `takedown_notices`, `takedown_outbox` and
//! `takedown_rdap_cache`.

use super::{Stmt, stored_text};
use crate::StoreError;
use crate::notices::{NewNotice, NoticeDelivery, NoticeDisposition, NoticeRecord};

/// Columns of `takedown_notices`, as in [`NoticeRow`].
macro_rules! notice_cols {
    () => {
        "notice_id, finding_id, url, host, level, recipient, channel, delivery, disposition, \
         notice_json, found_at, created_at, approved_at, approved_by, sent_at, message_id, \
         attempts, last_error, closed_at, last_check_at, last_check_status, next_check_at, \
         escalated_at"
    };
}

table_row! {
    /// A row of `takedown_notices`.
    struct NoticeRow {
        notice_id: String,
        finding_id: String,
        url: String,
        host: String,
        level: String,
        recipient: String,
        channel: String,
        delivery: String,
        disposition: String,
        notice_json: String,
        found_at: i64,
        created_at: i64,
        approved_at: Option<i64>,
        approved_by: Option<String>,
        sent_at: Option<i64>,
        message_id: Option<String>,
        attempts: i64,
        last_error: Option<String>,
        closed_at: Option<i64>,
        last_check_at: Option<i64>,
        last_check_status: Option<i64>,
        next_check_at: Option<i64>,
        escalated_at: Option<i64>,
    }
}

table_row! {
    /// The answer of [`rdap_cached`].
    struct RdapResponse {
        response: String,
    }
}

/// Insert a notice, `open`, unless its id exists.
pub(crate) fn insert(n: &NewNotice) -> Stmt {
    Stmt::new(
        "INSERT INTO takedown_notices (notice_id, finding_id, url, host, level, recipient, \
         channel, delivery, disposition, notice_json, found_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'open', $9, $10, $11) \
         ON CONFLICT (notice_id) DO NOTHING",
    )
    .bind(n.notice_id.as_str())
    .bind(n.finding_id.as_str())
    .bind(n.url.as_str())
    .bind(n.host.as_str())
    .bind(n.level)
    .bind(n.recipient.as_str())
    .bind(n.channel)
    .bind(n.delivery)
    .bind(n.notice_json.as_str())
    .bind(n.found_at)
    .bind(n.created_at)
}

pub(crate) fn get(notice_id: &str) -> Stmt {
    Stmt::new(concat!(
        "SELECT ",
        notice_cols!(),
        " FROM takedown_notices WHERE notice_id = $1"
    ))
    .bind(notice_id)
}

/// Every notice, oldest first.
pub(crate) fn list() -> Stmt {
    Stmt::new(concat!(
        "SELECT ",
        notice_cols!(),
        " FROM takedown_notices ORDER BY created_at, notice_id"
    ))
}

/// The notices in a delivery state, oldest first.
pub(crate) fn list_in(delivery: NoticeDelivery) -> Stmt {
    Stmt::new(concat!(
        "SELECT ",
        notice_cols!(),
        " FROM takedown_notices WHERE delivery = $1 ORDER BY created_at, notice_id"
    ))
    .bind(delivery)
}

/// The notices of a finding, oldest first.
pub(crate) fn for_finding(finding_id: &str) -> Stmt {
    Stmt::new(concat!(
        "SELECT ",
        notice_cols!(),
        " FROM takedown_notices WHERE finding_id = $1 ORDER BY created_at, notice_id"
    ))
    .bind(finding_id)
}

/// Approve an open notice that waits for approval, was made in dry-run mode, or failed.
pub(crate) fn approve(notice_id: &str, now: i64, by: &str) -> Stmt {
    Stmt::new(
        "UPDATE takedown_notices SET delivery = 'approved', approved_at = $2, approved_by = $3 \
         WHERE notice_id = $1 AND disposition = 'open' \
         AND delivery IN ('pending_approval', 'dry_run', 'failed')",
    )
    .bind(notice_id)
    .bind(now)
    .bind(by)
}

/// Drop the claim of a notice whose send never happened.
pub(crate) fn delete_unsent_claims(notice_id: &str) -> Stmt {
    Stmt::new("DELETE FROM takedown_outbox WHERE notice_id = $1 AND sent_at IS NULL")
        .bind(notice_id)
}

/// Open notices a send run may hand to a transport: `approved`, or `failed` by transient
/// errors (no claim kept) fewer than `max_attempts` times; oldest first.
pub(crate) fn sendable(max_attempts: i64) -> Stmt {
    Stmt::new(concat!(
        "SELECT ",
        notice_cols!(),
        " FROM takedown_notices n WHERE disposition = 'open' AND \
         (delivery = 'approved' OR (delivery = 'failed' AND attempts < $1 AND NOT EXISTS \
         (SELECT 1 FROM takedown_outbox o WHERE o.notice_id = n.notice_id))) \
         ORDER BY created_at, notice_id"
    ))
    .bind(max_attempts)
}

/// Set the delivery state, and the error if one is given.
pub(crate) fn set_delivery(notice_id: &str, delivery: NoticeDelivery, error: Option<&str>) -> Stmt {
    Stmt::new(
        "UPDATE takedown_notices SET delivery = $2, last_error = COALESCE($3, last_error) \
         WHERE notice_id = $1",
    )
    .bind(notice_id)
    .bind(delivery)
    .bind(error)
}

/// Claim the send of a notice: the outbox row, exclusive by its key.
pub(crate) fn insert_claim(
    idem_key: &str,
    notice_id: &str,
    recipient: &str,
    now: i64,
    claimed_by: &str,
) -> Stmt {
    Stmt::new(
        "INSERT INTO takedown_outbox (idem_key, notice_id, recipient, claimed_at, claimed_by) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (idem_key) DO NOTHING",
    )
    .bind(idem_key)
    .bind(notice_id)
    .bind(recipient)
    .bind(now)
    .bind(claimed_by)
}

/// One integer: the other claims to `recipient` since `window_start`.
pub(crate) fn count_recent_claims(recipient: &str, window_start: i64, idem_key: &str) -> Stmt {
    Stmt::new(
        "SELECT COUNT(*) FROM takedown_outbox WHERE recipient = $1 AND claimed_at >= $2 \
         AND idem_key <> $3",
    )
    .bind(recipient)
    .bind(window_start)
    .bind(idem_key)
}

/// An open `approved` or `failed` notice becomes `sending`.
pub(crate) fn start_sending(notice_id: &str) -> Stmt {
    Stmt::new(
        "UPDATE takedown_notices SET delivery = 'sending' WHERE notice_id = $1 \
         AND disposition = 'open' AND delivery IN ('approved', 'failed')",
    )
    .bind(notice_id)
}

pub(crate) fn record_claim_sent(idem_key: &str, now: i64, response: &str) -> Stmt {
    Stmt::new("UPDATE takedown_outbox SET sent_at = $2, response = $3 WHERE idem_key = $1")
        .bind(idem_key)
        .bind(now)
        .bind(response)
}

pub(crate) fn record_notice_sent(
    notice_id: &str,
    now: i64,
    message_id: &str,
    next_check_at: i64,
) -> Stmt {
    Stmt::new(
        "UPDATE takedown_notices SET delivery = 'sent', sent_at = $2, message_id = $3, \
         next_check_at = $4 WHERE notice_id = $1",
    )
    .bind(notice_id)
    .bind(now)
    .bind(message_id)
    .bind(next_check_at)
}

/// Keep an unsent claim, with the refusal as its response.
pub(crate) fn keep_refused_claim(idem_key: &str, error: &str) -> Stmt {
    Stmt::new("UPDATE takedown_outbox SET response = $2 WHERE idem_key = $1 AND sent_at IS NULL")
        .bind(idem_key)
        .bind(error)
}

pub(crate) fn delete_unsent_claim(idem_key: &str) -> Stmt {
    Stmt::new("DELETE FROM takedown_outbox WHERE idem_key = $1 AND sent_at IS NULL").bind(idem_key)
}

/// Count a failed attempt: `failed` with the error.
pub(crate) fn record_failure(notice_id: &str, error: &str) -> Stmt {
    Stmt::new(
        "UPDATE takedown_notices SET delivery = 'failed', attempts = attempts + 1, \
         last_error = $2 WHERE notice_id = $1",
    )
    .bind(notice_id)
    .bind(error)
}

/// `sending` notices whose claim, made at or before `claimed_before`, was never recorded.
pub(crate) fn unrecorded_sends(claimed_before: i64) -> Stmt {
    Stmt::new(concat!(
        "SELECT ",
        notice_cols!(),
        " FROM takedown_notices WHERE delivery = 'sending' AND notice_id IN \
         (SELECT notice_id FROM takedown_outbox WHERE sent_at IS NULL AND claimed_at <= $1)"
    ))
    .bind(claimed_before)
}

/// A `sending` notice becomes `in_doubt`, with the reason.
pub(crate) fn mark_in_doubt(notice_id: &str, reason: &str) -> Stmt {
    Stmt::new(
        "UPDATE takedown_notices SET delivery = 'in_doubt', last_error = $2 \
         WHERE notice_id = $1 AND delivery = 'sending'",
    )
    .bind(notice_id)
    .bind(reason)
}

/// Open, sent notices whose re-check is due at `now`, soonest first.
pub(crate) fn due_checks(now: i64) -> Stmt {
    Stmt::new(concat!(
        "SELECT ",
        notice_cols!(),
        " FROM takedown_notices WHERE disposition = 'open' AND delivery = 'sent' \
         AND next_check_at <= $1 ORDER BY next_check_at, notice_id"
    ))
    .bind(now)
}

/// A re-check that found the content: the next one is due at `next_check_at`.
pub(crate) fn record_check(notice_id: &str, now: i64, status: i64, next_check_at: i64) -> Stmt {
    Stmt::new(
        "UPDATE takedown_notices SET last_check_at = $2, last_check_status = $3, \
         next_check_at = $4 WHERE notice_id = $1",
    )
    .bind(notice_id)
    .bind(now)
    .bind(status)
    .bind(next_check_at)
}

/// A re-check that found the content removed: the notice is closed.
pub(crate) fn record_check_closed(notice_id: &str, now: i64, status: i64) -> Stmt {
    Stmt::new(
        "UPDATE takedown_notices SET last_check_at = $2, last_check_status = $3, \
         next_check_at = NULL, disposition = 'closed', closed_at = $2 WHERE notice_id = $1",
    )
    .bind(notice_id)
    .bind(now)
    .bind(status)
}

/// Move the disposition from `from` to `to` (compare and set); closing also sets `closed_at`
/// and stops the re-checks.
pub(crate) fn set_disposition(
    notice_id: &str,
    from: NoticeDisposition,
    to: NoticeDisposition,
    now: i64,
) -> Stmt {
    if to == NoticeDisposition::Closed {
        Stmt::new(
            "UPDATE takedown_notices SET disposition = $3, closed_at = $4, \
             next_check_at = NULL WHERE notice_id = $1 AND disposition = $2",
        )
        .bind(notice_id)
        .bind(from)
        .bind(to)
        .bind(now)
    } else {
        Stmt::new(
            "UPDATE takedown_notices SET disposition = $3 \
             WHERE notice_id = $1 AND disposition = $2",
        )
        .bind(notice_id)
        .bind(from)
        .bind(to)
    }
}

pub(crate) fn mark_escalated(notice_id: &str, now: i64) -> Stmt {
    Stmt::new("UPDATE takedown_notices SET escalated_at = $2 WHERE notice_id = $1")
        .bind(notice_id)
        .bind(now)
}

/// An [`RdapResponse`] not expired at `now`, if any.
pub(crate) fn rdap_cached(query: &str, now: i64) -> Stmt {
    Stmt::new("SELECT response FROM takedown_rdap_cache WHERE query = $1 AND expires_at > $2")
        .bind(query)
        .bind(now)
}

pub(crate) fn rdap_store(query: &str, response: &str, now: i64, expires_at: i64) -> Stmt {
    Stmt::new(
        "INSERT INTO takedown_rdap_cache (query, response, fetched_at, expires_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (query) DO UPDATE SET \
         response = excluded.response, fetched_at = excluded.fetched_at, \
         expires_at = excluded.expires_at",
    )
    .bind(query)
    .bind(response)
    .bind(now)
    .bind(expires_at)
}

impl TryFrom<NoticeRow> for NoticeRecord {
    type Error = StoreError;

    fn try_from(r: NoticeRow) -> Result<NoticeRecord, StoreError> {
        Ok(NoticeRecord {
            notice_id: r.notice_id,
            finding_id: r.finding_id,
            url: r.url,
            host: r.host,
            level: stored_text("takedown_notices.level", &r.level)?,
            recipient: r.recipient,
            channel: stored_text("takedown_notices.channel", &r.channel)?,
            delivery: stored_text("takedown_notices.delivery", &r.delivery)?,
            disposition: stored_text("takedown_notices.disposition", &r.disposition)?,
            notice_json: r.notice_json,
            found_at: r.found_at,
            created_at: r.created_at,
            approved_at: r.approved_at,
            approved_by: r.approved_by,
            sent_at: r.sent_at,
            message_id: r.message_id,
            attempts: r.attempts,
            last_error: r.last_error,
            closed_at: r.closed_at,
            last_check_at: r.last_check_at,
            last_check_status: r.last_check_status,
            next_check_at: r.next_check_at,
            escalated_at: r.escalated_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_list_matches_the_row() {
        assert_eq!(notice_cols!(), NoticeRow::COLUMNS.join(", "));
    }
}
