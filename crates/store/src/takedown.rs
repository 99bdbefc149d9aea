//! Takedown tables (migration 0003): notices, the delivery outbox and the RDAP cache.
//!
//! Statements are written once with `$N` placeholders; SQLite gets them as `?N` (same
//! numbering), so both backends run the same text.

use sqlx::Row;

use crate::StoreError;
use crate::store::{Pools, Store};

/// A notice to insert (see `leaktrace-takedown`'s `Notice`; stored as JSON plus the columns
/// the pipeline filters on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNotice {
    /// Notice id (derived from finding, level, recipient).
    pub notice_id: String,
    /// Finding id (crawler's `findings`; no foreign key).
    pub finding_id: String,
    /// Infringing URL.
    pub url: String,
    /// Its host.
    pub host: String,
    /// `site`, `host`, `cdn` or `registrar`.
    pub level: String,
    /// Recipient address or endpoint.
    pub recipient: String,
    /// `email` or `http`.
    pub channel: String,
    /// Initial delivery state: `pending_approval`, `approved` or `dry_run`.
    pub delivery: String,
    /// The notice as JSON.
    pub notice_json: String,
    /// When the finding was first seen (UTC unix seconds).
    pub found_at: i64,
    /// When the notice was made (UTC unix seconds).
    pub created_at: i64,
}

/// A stored notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeRecord {
    /// Notice id.
    pub notice_id: String,
    /// Finding id.
    pub finding_id: String,
    /// Infringing URL.
    pub url: String,
    /// Its host.
    pub host: String,
    /// Escalation level.
    pub level: String,
    /// Recipient address or endpoint.
    pub recipient: String,
    /// `email` or `http`.
    pub channel: String,
    /// `pending_approval`, `approved`, `sending`, `sent`, `dry_run`, `failed`, `in_doubt`.
    pub delivery: String,
    /// `open`, `closed`, `rejected`, `counter_notice`.
    pub disposition: String,
    /// The notice as JSON.
    pub notice_json: String,
    /// Finding first seen.
    pub found_at: i64,
    /// Notice made.
    pub created_at: i64,
    /// Approved (human approval mode).
    pub approved_at: Option<i64>,
    /// Who approved.
    pub approved_by: Option<String>,
    /// Delivered.
    pub sent_at: Option<i64>,
    /// Message-ID (e-mail) or request id (HTTP).
    pub message_id: Option<String>,
    /// Failed delivery attempts.
    pub attempts: i64,
    /// Last delivery or check error.
    pub last_error: Option<String>,
    /// Content found removed (or notice otherwise closed).
    pub closed_at: Option<i64>,
    /// Last re-check.
    pub last_check_at: Option<i64>,
    /// HTTP status of the last re-check (0: connection failed).
    pub last_check_status: Option<i64>,
    /// Next re-check due.
    pub next_check_at: Option<i64>,
    /// When the next level of the ladder was notified.
    pub escalated_at: Option<i64>,
}

/// Result of [`Store::claim_outbox`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxClaim {
    /// This caller owns the send.
    Claimed,
    /// Claimed before (sent, or in flight / crashed): must not be sent again.
    AlreadyClaimed,
    /// The recipient's rate limit is reached; try later.
    RateLimited,
}

const NOTICE_COLS: &str = "notice_id, finding_id, url, host, level, recipient, channel, delivery, \
     disposition, notice_json, found_at, created_at, approved_at, approved_by, sent_at, message_id, \
     attempts, last_error, closed_at, last_check_at, last_check_status, next_check_at, escalated_at";

/// `$N` → `?N` for SQLite.
fn lite(sql: &str) -> String {
    sql.replace('$', "?")
}

macro_rules! record {
    ($row:expr) => {{
        let r = $row;
        NoticeRecord {
            notice_id: r.try_get(0)?,
            finding_id: r.try_get(1)?,
            url: r.try_get(2)?,
            host: r.try_get(3)?,
            level: r.try_get(4)?,
            recipient: r.try_get(5)?,
            channel: r.try_get(6)?,
            delivery: r.try_get(7)?,
            disposition: r.try_get(8)?,
            notice_json: r.try_get(9)?,
            found_at: r.try_get(10)?,
            created_at: r.try_get(11)?,
            approved_at: r.try_get(12)?,
            approved_by: r.try_get(13)?,
            sent_at: r.try_get(14)?,
            message_id: r.try_get(15)?,
            attempts: r.try_get(16)?,
            last_error: r.try_get(17)?,
            closed_at: r.try_get(18)?,
            last_check_at: r.try_get(19)?,
            last_check_status: r.try_get(20)?,
            next_check_at: r.try_get(21)?,
            escalated_at: r.try_get(22)?,
        }
    }};
}

/// Runs a statement returning rows-affected on either backend, binding `$args` in order.
macro_rules! exec {
    ($store:expr, $sql:expr, $($arg:expr),* $(,)?) => {{
        let sql: &str = $sql;
        match &$store.pools {
            Pools::Sqlite(p) => {
                let q = lite(sql);
                sqlx::query(sqlx::AssertSqlSafe(q))$(.bind($arg))*.execute(p).await?.rows_affected()
            }
            Pools::Postgres(p) => {
                sqlx::query(sqlx::AssertSqlSafe(sql))$(.bind($arg))*.execute(p).await?.rows_affected()
            }
        }
    }};
}

/// Fetches notice rows on either backend.
macro_rules! notices {
    ($store:expr, $sql:expr, $($arg:expr),* $(,)?) => {{
        let sql: &str = $sql;
        let mut out = Vec::new();
        match &$store.pools {
            Pools::Sqlite(p) => {
                let q = lite(sql);
                for r in sqlx::query(sqlx::AssertSqlSafe(q))$(.bind($arg))*.fetch_all(p).await? {
                    out.push(record!(&r));
                }
            }
            Pools::Postgres(p) => {
                for r in sqlx::query(sqlx::AssertSqlSafe(sql))$(.bind($arg))*.fetch_all(p).await? {
                    out.push(record!(&r));
                }
            }
        }
        out
    }};
}

impl Store {
    /// Inserts a notice unless one with the same id exists. Returns whether it was inserted
    /// (a second pipeline run over the same finding inserts nothing).
    pub async fn insert_notice(&self, n: &NewNotice) -> Result<bool, StoreError> {
        let sql = "INSERT INTO takedown_notices (notice_id, finding_id, url, host, level, recipient, \
             channel, delivery, disposition, notice_json, found_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'open', $9, $10, $11) \
             ON CONFLICT (notice_id) DO NOTHING";
        let n2 = n.clone();
        Ok(exec!(
            self,
            sql,
            n2.notice_id,
            n2.finding_id,
            n2.url,
            n2.host,
            n2.level,
            n2.recipient,
            n2.channel,
            n2.delivery,
            n2.notice_json,
            n2.found_at,
            n2.created_at
        ) == 1)
    }

    /// One notice by id.
    pub async fn get_notice(&self, notice_id: &str) -> Result<Option<NoticeRecord>, StoreError> {
        let sql = format!("SELECT {NOTICE_COLS} FROM takedown_notices WHERE notice_id = $1");
        Ok(notices!(self, &sql, notice_id).into_iter().next())
    }

    /// Notices, oldest first; `delivery` filters on the delivery state.
    pub async fn list_notices(
        &self,
        delivery: Option<&str>,
    ) -> Result<Vec<NoticeRecord>, StoreError> {
        Ok(match delivery {
            Some(d) => {
                let sql = format!(
                    "SELECT {NOTICE_COLS} FROM takedown_notices WHERE delivery = $1 \
                     ORDER BY created_at, notice_id"
                );
                notices!(self, &sql, d)
            }
            None => {
                let sql = format!(
                    "SELECT {NOTICE_COLS} FROM takedown_notices ORDER BY created_at, notice_id"
                );
                notices!(self, &sql,)
            }
        })
    }

    /// Notices of one finding.
    pub async fn notices_for_finding(
        &self,
        finding_id: &str,
    ) -> Result<Vec<NoticeRecord>, StoreError> {
        let sql = format!(
            "SELECT {NOTICE_COLS} FROM takedown_notices WHERE finding_id = $1 ORDER BY created_at, notice_id"
        );
        Ok(notices!(self, &sql, finding_id))
    }

    /// Human approval of an open notice: `pending_approval`, `dry_run` (made in dry-run mode)
    /// or `failed` → `approved`. Returns whether the row changed.
    ///
    /// Approving a `failed` notice also drops the claim a permanent refusal kept (see
    /// [`Store::release_claim`]): the recipient refused that request, so nothing was
    /// delivered, and the human asks for a new attempt.
    pub async fn approve_notice(
        &self,
        notice_id: &str,
        by: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let sql = "UPDATE takedown_notices SET delivery = 'approved', approved_at = $2, approved_by = $3 \
             WHERE notice_id = $1 AND disposition = 'open' \
             AND delivery IN ('pending_approval', 'dry_run', 'failed')";
        let changed = exec!(self, sql, notice_id, now, by) == 1;
        if changed {
            exec!(
                self,
                "DELETE FROM takedown_outbox WHERE notice_id = $1 AND sent_at IS NULL",
                notice_id
            );
        }
        Ok(changed)
    }

    /// Notices a send run may hand to a transport: open and `approved`, or open and `failed`
    /// by transient errors (no claim kept, fewer than `max_attempts` failed attempts); oldest
    /// first.
    pub async fn sendable_notices(
        &self,
        max_attempts: i64,
    ) -> Result<Vec<NoticeRecord>, StoreError> {
        let sql = format!(
            "SELECT {NOTICE_COLS} FROM takedown_notices n WHERE disposition = 'open' AND \
             (delivery = 'approved' OR (delivery = 'failed' AND attempts < $1 AND NOT EXISTS \
             (SELECT 1 FROM takedown_outbox o WHERE o.notice_id = n.notice_id))) \
             ORDER BY created_at, notice_id"
        );
        Ok(notices!(self, &sql, max_attempts))
    }

    /// Sets the delivery state of a notice (e.g. `failed` with the error).
    pub async fn set_delivery(
        &self,
        notice_id: &str,
        delivery: &str,
        error: Option<&str>,
    ) -> Result<bool, StoreError> {
        let sql = "UPDATE takedown_notices SET delivery = $2, last_error = COALESCE($3, last_error) \
             WHERE notice_id = $1";
        Ok(exec!(self, sql, notice_id, delivery, error) == 1)
    }

    /// Claims the send of a notice: inserts the outbox row `idem_key` (exclusive by primary
    /// key) and sets the notice to `sending`, in one transaction, unless `recipient` already
    /// had `rate_limit` claims since `window_start`.
    ///
    /// A notice whose claim exists is never claimed again, whatever happened to the sender:
    /// a crash between "handed to the transport" and [`Store::record_sent`] leaves the notice
    /// `sending` (then `in_doubt`), not re-sendable.
    #[allow(clippy::too_many_arguments)]
    pub async fn claim_outbox(
        &self,
        idem_key: &str,
        notice_id: &str,
        recipient: &str,
        claimed_by: &str,
        now: i64,
        rate_limit: i64,
        window_start: i64,
    ) -> Result<OutboxClaim, StoreError> {
        // The insert comes first: it takes the write lock (SQLite waits for it with the busy
        // timeout instead of failing a read-to-write upgrade) and decides exclusivity.
        let count_sql = "SELECT COUNT(*) FROM takedown_outbox WHERE recipient = $1 AND claimed_at >= $2 \
             AND idem_key <> $3";
        let insert_sql = "INSERT INTO takedown_outbox (idem_key, notice_id, recipient, claimed_at, claimed_by) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (idem_key) DO NOTHING";
        let update_sql = "UPDATE takedown_notices SET delivery = 'sending' WHERE notice_id = $1 \
             AND disposition = 'open' AND delivery IN ('approved', 'failed')";
        macro_rules! claim {
            ($pool:expr, $conv:expr) => {{
                let mut tx = $pool.begin().await?;
                let ins = sqlx::query(sqlx::AssertSqlSafe($conv(insert_sql)))
                    .bind(idem_key)
                    .bind(notice_id)
                    .bind(recipient)
                    .bind(now)
                    .bind(claimed_by)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if ins != 1 {
                    tx.rollback().await?;
                    return Ok(OutboxClaim::AlreadyClaimed);
                }
                let recent: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe($conv(count_sql)))
                    .bind(recipient)
                    .bind(window_start)
                    .bind(idem_key)
                    .fetch_one(&mut *tx)
                    .await?;
                if recent >= rate_limit {
                    tx.rollback().await?;
                    return Ok(OutboxClaim::RateLimited);
                }
                let upd = sqlx::query(sqlx::AssertSqlSafe($conv(update_sql)))
                    .bind(notice_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if upd != 1 {
                    tx.rollback().await?;
                    return Ok(OutboxClaim::AlreadyClaimed);
                }
                tx.commit().await?;
                Ok(OutboxClaim::Claimed)
            }};
        }
        match &self.pools {
            Pools::Sqlite(p) => claim!(p, lite),
            Pools::Postgres(p) => claim!(p, |s: &str| s.to_owned()),
        }
    }

    /// Records a delivered notice: outbox `sent_at` + response, notice `sent` with its
    /// Message-ID, first re-check due at `next_check_at`.
    pub async fn record_sent(
        &self,
        idem_key: &str,
        notice_id: &str,
        message_id: &str,
        response: &str,
        now: i64,
        next_check_at: i64,
    ) -> Result<(), StoreError> {
        exec!(
            self,
            "UPDATE takedown_outbox SET sent_at = $2, response = $3 WHERE idem_key = $1",
            idem_key,
            now,
            response
        );
        exec!(
            self,
            "UPDATE takedown_notices SET delivery = 'sent', sent_at = $2, message_id = $3, \
             next_check_at = $4 WHERE notice_id = $1",
            notice_id,
            now,
            message_id,
            next_check_at
        );
        Ok(())
    }

    /// Ends a claim after a delivery that certainly did not happen (the transport refused
    /// it), counts the attempt and sets the notice `failed` with `error`.
    ///
    /// A transient failure (`permanent` false: 5xx, 429, a timeout) deletes the outbox row, so
    /// a later run may try again. A permanent refusal (a 4xx answer, an SMTP 5xx) keeps the
    /// row with the refusal as its response: the same request would be refused again, so the
    /// notice is not retried until a human approves it again ([`Store::approve_notice`]).
    pub async fn release_claim(
        &self,
        idem_key: &str,
        notice_id: &str,
        error: &str,
        permanent: bool,
    ) -> Result<(), StoreError> {
        if permanent {
            exec!(
                self,
                "UPDATE takedown_outbox SET response = $2 WHERE idem_key = $1 AND sent_at IS NULL",
                idem_key,
                error
            );
        } else {
            exec!(
                self,
                "DELETE FROM takedown_outbox WHERE idem_key = $1 AND sent_at IS NULL",
                idem_key
            );
        }
        exec!(
            self,
            "UPDATE takedown_notices SET delivery = 'failed', attempts = attempts + 1, last_error = $2 \
             WHERE notice_id = $1",
            notice_id,
            error
        );
        Ok(())
    }

    /// Notices left `sending` by a sender that did not record the outcome (claimed at or before
    /// `claimed_before`, whole seconds, so a lease of 0 s covers a claim of this very second)
    /// become `in_doubt`. Returns their ids. They are never resent
    /// automatically.
    pub async fn mark_in_doubt(&self, claimed_before: i64) -> Result<Vec<String>, StoreError> {
        let sql = format!(
            "SELECT {NOTICE_COLS} FROM takedown_notices WHERE delivery = 'sending' AND notice_id IN \
             (SELECT notice_id FROM takedown_outbox WHERE sent_at IS NULL AND claimed_at <= $1)"
        );
        let rows = notices!(self, &sql, claimed_before);
        let mut ids = Vec::new();
        for r in rows {
            exec!(
                self,
                "UPDATE takedown_notices SET delivery = 'in_doubt', last_error = $2 WHERE notice_id = $1 AND delivery = 'sending'",
                &r.notice_id,
                "the sender stopped after claiming the send and before recording it; it may have been delivered"
            );
            ids.push(r.notice_id);
        }
        Ok(ids)
    }

    /// Open, delivered notices whose re-check is due at `now`.
    pub async fn due_checks(&self, now: i64) -> Result<Vec<NoticeRecord>, StoreError> {
        let sql = format!(
            "SELECT {NOTICE_COLS} FROM takedown_notices WHERE disposition = 'open' AND delivery = 'sent' \
             AND next_check_at <= $1 ORDER BY next_check_at, notice_id"
        );
        Ok(notices!(self, &sql, now))
    }

    /// Records a re-check: status, time, next due; `closed` closes the notice at `now`.
    pub async fn record_check(
        &self,
        notice_id: &str,
        status: i64,
        now: i64,
        next_check_at: i64,
        closed: bool,
    ) -> Result<(), StoreError> {
        if closed {
            exec!(
                self,
                "UPDATE takedown_notices SET last_check_at = $2, last_check_status = $3, \
                 next_check_at = NULL, disposition = 'closed', closed_at = $2 WHERE notice_id = $1",
                notice_id,
                now,
                status
            );
        } else {
            exec!(
                self,
                "UPDATE takedown_notices SET last_check_at = $2, last_check_status = $3, \
                 next_check_at = $4 WHERE notice_id = $1",
                notice_id,
                now,
                status,
                next_check_at
            );
        }
        Ok(())
    }

    /// Moves the disposition from `from` to `to` (`open`, `closed`, `rejected`,
    /// `counter_notice`) if it is still `from` (compare and set: a concurrent change wins and
    /// this returns false). `closed` also sets `closed_at` and stops the re-checks. Which moves
    /// are allowed is the caller's rule (see `leaktrace-takedown`'s `Disposition`).
    pub async fn set_disposition(
        &self,
        notice_id: &str,
        from: &str,
        to: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let changed = if to == "closed" {
            exec!(
                self,
                "UPDATE takedown_notices SET disposition = $3, closed_at = $4, next_check_at = NULL \
                 WHERE notice_id = $1 AND disposition = $2",
                notice_id,
                from,
                to,
                now
            )
        } else {
            exec!(
                self,
                "UPDATE takedown_notices SET disposition = $3 WHERE notice_id = $1 AND disposition = $2",
                notice_id,
                from,
                to
            )
        };
        Ok(changed == 1)
    }

    /// Marks that the next level of the ladder was notified about this notice's content.
    pub async fn mark_escalated(&self, notice_id: &str, now: i64) -> Result<(), StoreError> {
        exec!(
            self,
            "UPDATE takedown_notices SET escalated_at = $2 WHERE notice_id = $1",
            notice_id,
            now
        );
        Ok(())
    }

    /// A cached RDAP answer not expired at `now`.
    pub async fn rdap_cached(&self, query: &str, now: i64) -> Result<Option<String>, StoreError> {
        let sql = "SELECT response FROM takedown_rdap_cache WHERE query = $1 AND expires_at > $2";
        Ok(match &self.pools {
            Pools::Sqlite(p) => sqlx::query(sqlx::AssertSqlSafe(lite(sql)))
                .bind(query)
                .bind(now)
                .fetch_optional(p)
                .await?
                .map(|r| r.try_get::<String, _>(0))
                .transpose()?,
            Pools::Postgres(p) => sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(query)
                .bind(now)
                .fetch_optional(p)
                .await?
                .map(|r| r.try_get::<String, _>(0))
                .transpose()?,
        })
    }

    /// Stores an RDAP answer until `expires_at`.
    pub async fn rdap_store(
        &self,
        query: &str,
        response: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        exec!(
            self,
            "INSERT INTO takedown_rdap_cache (query, response, fetched_at, expires_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (query) DO UPDATE SET response = excluded.response, fetched_at = excluded.fetched_at, \
             expires_at = excluded.expires_at",
            query,
            response,
            now,
            expires_at
        );
        Ok(())
    }
}
