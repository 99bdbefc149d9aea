//! The takedown tables (migration 0003): notices, the delivery outbox and the RDAP cache.
//!
//! A notice goes to one recipient about one finding (by id: no foreign key to `findings`).
//! Its [`NoticeDelivery`] follows `pending_approval` → `approved` → `sending` → `sent`, or
//! `dry_run`, `failed`, `in_doubt`; its [`NoticeDisposition`] (the ACNS NoticeStatus
//! vocabulary) is changed by re-checks and by hand. The outbox makes a send exclusive: a
//! notice whose claim exists is never claimed again ([`Store::claim_outbox`]).

use crate::StoreError;
use crate::sql;
use crate::store::Store;

text_enum! {
    /// Where a notice's recipient stands on the escalation ladder (`takedown_notices.level`).
    pub enum NoticeLevel ("notice level") {
        /// The site operator.
        Site = "site",
        /// The hosting provider of the server address.
        Host = "host",
        /// The CDN in front of the site.
        Cdn = "cdn",
        /// The domain's registrar.
        Registrar = "registrar",
    }
}

text_enum! {
    /// How a notice reaches its recipient (`takedown_notices.channel`).
    #[non_exhaustive]
    pub enum NoticeChannel ("notice channel") {
        /// E-mail to an address.
        Email = "email",
        /// HTTP POST to an endpoint.
        Http = "http",
    }
}

text_enum! {
    /// Where a notice's delivery stands (`takedown_notices.delivery`).
    #[non_exhaustive]
    pub enum NoticeDelivery ("delivery state") {
        /// Made in approval mode: waits for a human.
        PendingApproval = "pending_approval",
        /// Approved (by a human, or made in automatic mode): to be sent.
        Approved = "approved",
        /// Claimed by a sender; the outcome is not recorded yet.
        Sending = "sending",
        /// Delivered.
        Sent = "sent",
        /// Made in dry-run mode: rendered, never sent unless approved.
        DryRun = "dry_run",
        /// The last delivery attempt failed.
        Failed = "failed",
        /// A send was claimed but never recorded (a crash): it may have been delivered, so it
        /// is never resent automatically.
        InDoubt = "in_doubt",
    }
}

text_enum! {
    /// What became of a notice (`takedown_notices.disposition`, the ACNS NoticeStatus
    /// vocabulary). Which moves are allowed is the caller's rule (see `leaktrace-takedown`'s
    /// `Disposition`).
    pub enum NoticeDisposition ("disposition") {
        /// Waiting for removal.
        Open = "open",
        /// Content removed, or the case closed by hand.
        Closed = "closed",
        /// The recipient refused to act.
        Rejected = "rejected",
        /// The recipient forwarded a counter-notice.
        CounterNotice = "counter_notice",
    }
}

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
    /// The recipient's rung of the escalation ladder.
    pub level: NoticeLevel,
    /// Recipient address or endpoint.
    pub recipient: String,
    /// E-mail or HTTP.
    pub channel: NoticeChannel,
    /// Initial delivery state: [`NoticeDelivery::PendingApproval`],
    /// [`NoticeDelivery::Approved`] or [`NoticeDelivery::DryRun`].
    pub delivery: NoticeDelivery,
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
    pub level: NoticeLevel,
    /// Recipient address or endpoint.
    pub recipient: String,
    /// E-mail or HTTP.
    pub channel: NoticeChannel,
    /// Where the delivery stands.
    pub delivery: NoticeDelivery,
    /// What became of the notice.
    pub disposition: NoticeDisposition,
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
#[non_exhaustive]
pub enum OutboxClaim {
    /// This caller owns the send.
    Claimed,
    /// Claimed before (sent, or in flight / crashed): must not be sent again.
    AlreadyClaimed,
    /// The recipient's rate limit is reached; try later.
    RateLimited,
}

/// Why a notice left `sending` becomes `in_doubt`.
const IN_DOUBT_NOTE: &str = "the sender stopped after claiming the send and before recording \
     it; it may have been delivered";

impl Store {
    /// Inserts a notice unless one with the same id exists. Returns whether it was inserted
    /// (a second pipeline run over the same finding inserts nothing).
    pub async fn insert_notice(&self, n: &NewNotice) -> Result<bool, StoreError> {
        Ok(self.execute(sql::notices::insert(n)).await? == 1)
    }

    /// One notice by id.
    pub async fn get_notice(&self, notice_id: &str) -> Result<Option<NoticeRecord>, StoreError> {
        let row: Option<sql::notices::NoticeRow> =
            self.fetch_optional(sql::notices::get(notice_id)).await?;
        row.map(NoticeRecord::try_from).transpose()
    }

    /// Notices, oldest first; `delivery` filters on the delivery state.
    pub async fn list_notices(
        &self,
        delivery: Option<NoticeDelivery>,
    ) -> Result<Vec<NoticeRecord>, StoreError> {
        self.notices(match delivery {
            Some(d) => sql::notices::list_in(d),
            None => sql::notices::list(),
        })
        .await
    }

    /// Notices of one finding.
    pub async fn notices_for_finding(
        &self,
        finding_id: &str,
    ) -> Result<Vec<NoticeRecord>, StoreError> {
        self.notices(sql::notices::for_finding(finding_id)).await
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
        let changed = self
            .execute(sql::notices::approve(notice_id, now, by))
            .await?
            == 1;
        if changed {
            self.execute(sql::notices::delete_unsent_claims(notice_id))
                .await?;
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
        self.notices(sql::notices::sendable(max_attempts)).await
    }

    /// Sets the delivery state of a notice (e.g. `failed` with the error).
    pub async fn set_delivery(
        &self,
        notice_id: &str,
        delivery: NoticeDelivery,
        error: Option<&str>,
    ) -> Result<bool, StoreError> {
        let stmt = sql::notices::set_delivery(notice_id, delivery, error);
        Ok(self.execute(stmt).await? == 1)
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
        let mut tx = self.begin().await?;
        // The insert comes first: it takes the write lock (SQLite waits for it with the busy
        // timeout instead of failing a read-to-write upgrade) and decides exclusivity.
        let claim = sql::notices::insert_claim(idem_key, notice_id, recipient, now, claimed_by);
        if tx.execute(claim).await? != 1 {
            tx.rollback().await?;
            return Ok(OutboxClaim::AlreadyClaimed);
        }
        let recent: i64 = tx
            .fetch_scalar(sql::notices::count_recent_claims(
                recipient,
                window_start,
                idem_key,
            ))
            .await?;
        if recent >= rate_limit {
            tx.rollback().await?;
            return Ok(OutboxClaim::RateLimited);
        }
        if tx.execute(sql::notices::start_sending(notice_id)).await? != 1 {
            tx.rollback().await?;
            return Ok(OutboxClaim::AlreadyClaimed);
        }
        tx.commit().await?;
        Ok(OutboxClaim::Claimed)
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
        self.execute(sql::notices::record_claim_sent(idem_key, now, response))
            .await?;
        self.execute(sql::notices::record_notice_sent(
            notice_id,
            now,
            message_id,
            next_check_at,
        ))
        .await?;
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
        let claim = if permanent {
            sql::notices::keep_refused_claim(idem_key, error)
        } else {
            sql::notices::delete_unsent_claim(idem_key)
        };
        self.execute(claim).await?;
        self.execute(sql::notices::record_failure(notice_id, error))
            .await?;
        Ok(())
    }

    /// Notices left `sending` by a sender that did not record the outcome (claimed at or before
    /// `claimed_before`, whole seconds, so a lease of 0 s covers a claim of this very second)
    /// become `in_doubt`. Returns their ids. They are never resent
    /// automatically.
    pub async fn mark_in_doubt(&self, claimed_before: i64) -> Result<Vec<String>, StoreError> {
        let rows = self
            .notices(sql::notices::unrecorded_sends(claimed_before))
            .await?;
        let mut ids = Vec::new();
        for r in rows {
            self.execute(sql::notices::mark_in_doubt(&r.notice_id, IN_DOUBT_NOTE))
                .await?;
            ids.push(r.notice_id);
        }
        Ok(ids)
    }

    /// Open, delivered notices whose re-check is due at `now`.
    pub async fn due_checks(&self, now: i64) -> Result<Vec<NoticeRecord>, StoreError> {
        self.notices(sql::notices::due_checks(now)).await
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
        let stmt = if closed {
            sql::notices::record_check_closed(notice_id, now, status)
        } else {
            sql::notices::record_check(notice_id, now, status, next_check_at)
        };
        self.execute(stmt).await?;
        Ok(())
    }

    /// Moves the disposition from `from` to `to` if it is still `from` (compare and set: a
    /// concurrent change wins and this returns false). [`NoticeDisposition::Closed`] also sets
    /// `closed_at` and stops the re-checks. Which moves are allowed is the caller's rule (see
    /// `leaktrace-takedown`'s `Disposition`).
    pub async fn set_disposition(
        &self,
        notice_id: &str,
        from: NoticeDisposition,
        to: NoticeDisposition,
        now: i64,
    ) -> Result<bool, StoreError> {
        let stmt = sql::notices::set_disposition(notice_id, from, to, now);
        Ok(self.execute(stmt).await? == 1)
    }

    /// Marks that the next level of the ladder was notified about this notice's content.
    pub async fn mark_escalated(&self, notice_id: &str, now: i64) -> Result<(), StoreError> {
        self.execute(sql::notices::mark_escalated(notice_id, now))
            .await?;
        Ok(())
    }

    /// A cached RDAP answer not expired at `now`.
    pub async fn rdap_cached(&self, query: &str, now: i64) -> Result<Option<String>, StoreError> {
        let row: Option<sql::notices::RdapResponse> = self
            .fetch_optional(sql::notices::rdap_cached(query, now))
            .await?;
        Ok(row.map(|r| r.response))
    }

    /// Stores an RDAP answer until `expires_at`.
    pub async fn rdap_store(
        &self,
        query: &str,
        response: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        self.execute(sql::notices::rdap_store(query, response, now, expires_at))
            .await?;
        Ok(())
    }

    async fn notices(&self, stmt: sql::Stmt) -> Result<Vec<NoticeRecord>, StoreError> {
        let rows: Vec<sql::notices::NoticeRow> = self.fetch_all(stmt).await?;
        rows.into_iter().map(NoticeRecord::try_from).collect()
    }
}
